"""What an export serves: `CharModelExport`, a dedicated `tf.Module` that runs without
tf_rnn installed (`tf_rnn.serve.export` writes it from a run as a SavedModel). Its
signatures (and same-named callable attributes of `tf.saved_model.load(out)`) are,
with B any batch size (the batch dimension is None: no retracing per size):

  zero_state(batch_size ())                  -> {"state": (B, S)}
  step(ids (B,) int32, state (B, S))          -> {"logits": (B, A), "state": (B, S)}
  step_text(chars (B,) string, state (B, S))  -> {"logits": (B, A), "state": (B, S)}
  generate(prime (B,) string, length (), temperature (), top_k (), seed () int64)
      -> {"text": (B,) prime + generated, "generated": (B,) the new characters only}
  score(text (B,) string) -> {"bpc": (B,) float32, "num_predictions": (B,) int32}

Strings are UTF-8; each character is looked up in a table initialised from the asset
`assets/vocab.txt` (one decimal Unicode code point per line, in id order). Characters
outside the vocabulary follow the run's `unknown` setting: "error" fails the call with
InvalidArgumentError naming them, "space" reads them as ' '. The text is not
normalised: give the characters the model was trained on. `step` fails on ids outside
[0, A), `step_text` on strings that are not exactly one character.

`generate` primes each row with its own prime (rows may differ in length: each row's
state is only updated while it is inside its prime), then runs `tf_rnn.engine.sampling`'s
generator from the prime's last character, as `sampling.sample` does. An empty prime
starts from a character drawn uniformly with the seed (it is part of "text").
Sampling is stateless: the same seed gives the same text. `score` is the mean
next-character cross-entropy in bits of each text, predicting characters 2..L from
the zero state (as `tf-rnn eval --batch-size 1`); texts shorter than 2 characters
score NaN. `assets.extra/tf_rnn.json` records the run, step and vocabulary.
"""

import math
import os

import tensorflow as tf

from tf_rnn.base.errors import ExportError
from tf_rnn.engine import sampling, steps

VOCAB_ASSET = "vocab.txt"
SIGNATURES = ("step", "step_text", "zero_state", "generate", "generate_more", "score")
# Characters per stream of one call of the (XLA) sampling loop: one compilation per
# batch size serves every length; longer texts run several calls carrying the state.
GENERATE_CHUNK = 4096
SCORE_WINDOW = 256  # characters scored per compiled window; the state carries across
_LN2 = math.log(2.0)


class CharModelExport(tf.Module):
    """The serving module of a character model: its variables, vocabulary and functions.

    Args:
      model: a `tf_rnn.models.charmodel.CharModel` with its weights.
      vocab: the `tf_rnn.data.vocab.Vocabulary` of its ids.
      asset_dir: an existing directory where the vocabulary asset file is written
        (tf.saved_model.save copies it into the export's assets/).
      unknown: "error" or "space": what strings with characters outside the
        vocabulary do (see the module docstring).
      jit_compile: XLA-compile the sampling loop of `generate` / `generate_more` (if
        XLA cannot compile it, it is exported without, and stderr says so). False for
        a server without XLA (TF Serving builds may lack it, serving#2214).
    """

    def __init__(self, model, vocab, asset_dir, unknown="error", jit_compile=True):
        super().__init__(name="tf_rnn_export")
        if unknown not in ("error", "space"):
            raise ValueError(f"Received an invalid value for argument `unknown`, expected "
                             f"'error' or 'space', got {unknown!r}.")
        if unknown == "space" and " " not in vocab.chars:
            # A run's own setting (vocab=corpus, unknown=space on a text without
            # spaces): the user's to change, not a bug.
            raise ExportError("Received unknown='space' for a vocabulary without ' ', "
                              "which has no space to map unknown characters to. Export a "
                              "run whose vocabulary holds ' ', or one with unknown='error'.")
        # The Keras model is deliberately not a tracked child: the export saves its
        # variables (below) and the traced functions, not a Keras object to revive.
        object.__setattr__(self, "_model", model)
        # A plain attribute, not a tracked tf.function: only the served functions
        # that call it are saved.
        object.__setattr__(self, "_generator", make_sampler(model, jit_compile))
        self.xla = self._generator.uses_xla()
        self.model_variables = [v.value for v in model.variables]  # the tf.Variables
        self._alphabet_size = vocab.size
        self._space_id = vocab.chars.index(" ") if unknown == "space" else -1
        path = os.path.join(asset_dir, VOCAB_ASSET)
        with open(path, "w", encoding="ascii") as f:
            f.write("".join(f"{ord(c)}\n" for c in vocab.chars))
        self.vocab_file = tf.saved_model.Asset(path)
        index = tf.lookup.TextFileIndex
        self._char_to_id = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            path, tf.int64, index.WHOLE_LINE, tf.int64, index.LINE_NUMBER), -1)
        self._id_to_char = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            path, tf.int64, index.LINE_NUMBER, tf.int64, index.WHOLE_LINE), -1)

        dtype = tf.as_dtype(model.compute_dtype)
        state = tf.TensorSpec([None, model.state_size], dtype, name="state")
        scalar = lambda dt, name: tf.TensorSpec([], dt, name=name)  # noqa: E731
        strings = lambda name: tf.TensorSpec([None], tf.string, name=name)  # noqa: E731
        self.zero_state = tf.function(self._zero_state, input_signature=[
            scalar(tf.int32, "batch_size")])
        self.step = tf.function(self._step, input_signature=[
            tf.TensorSpec([None], tf.int32, name="ids"), state])
        self.step_text = tf.function(self._step_text, input_signature=[
            strings("chars"), state])
        sampler = [scalar(tf.int32, "length"), scalar(tf.float32, "temperature"),
                   scalar(tf.int32, "top_k"), scalar(tf.int64, "seed")]
        self.generate = tf.function(self._generate, input_signature=[
            strings("prime"), *sampler])
        self.generate_more = tf.function(self._generate_more, input_signature=[
            strings("last"), state, *sampler, scalar(tf.int32, "start")])
        self.score = tf.function(self._score, input_signature=[strings("text")])
        self.vocabulary = tf.function(self._vocabulary, input_signature=[])

    def signatures(self):
        """{name: tf.function} for `tf.saved_model.save(..., signatures=...)`. The functions,
        not their concrete functions: the save traces each once, in its own save context (a
        concrete function traced here would be traced again there: ~2x the export's time)."""
        return {name: getattr(self, name) for name in SIGNATURES}

    # Strings <-> ids ------------------------------------------------------------------
    def encode(self, text):
        """(B,) UTF-8 strings -> (B, None) int32 ragged ids, unknown characters handled."""
        cps = tf.strings.unicode_decode(text, "UTF-8")  # (B, None) code points
        ids = tf.ragged.map_flat_values(
            lambda c: tf.cast(self._char_to_id.lookup(tf.cast(c, tf.int64)), tf.int32), cps)
        if self._space_id >= 0:
            return tf.ragged.map_flat_values(
                lambda i: tf.where(i < 0, self._space_id, i), ids)
        bad = ids.flat_values < 0
        bad_chars = tf.strings.unicode_encode(
            tf.boolean_mask(cps.flat_values, bad)[:, None], "UTF-8")
        with tf.control_dependencies([tf.debugging.Assert(
                ~tf.reduce_any(bad), ["tf_rnn export: characters not in the vocabulary:",
                                      bad_chars], summarize=20)]):
            return tf.identity(ids)

    def decode(self, ids):
        """(B, L) int ids, dense or ragged -> (B,) UTF-8 strings."""
        cps = tf.ragged.map_flat_values(
            lambda i: tf.cast(self._id_to_char.lookup(tf.cast(i, tf.int64)), tf.int32), ids)
        return tf.strings.unicode_encode(cps, "UTF-8")

    def _vocabulary(self):
        """() -> (A,) the characters, in id order."""
        return self.decode(tf.range(self._alphabet_size)[:, None])

    # Served functions -----------------------------------------------------------------
    def _zero_state(self, batch_size):
        """() -> {"state": (B, S)}: the state at the start of a stream."""
        return {"state": self._model.zero_state(batch_size)}

    def _step(self, ids, state):
        """ids (B,), state (B, S) -> {"logits": (B, A) float32, "state": (B, S)}."""
        checks = [tf.debugging.assert_non_negative(ids, message="step: ids must be >= 0"),
                  tf.debugging.assert_less(ids, self._alphabet_size,
                                           message="step: ids must be < alphabet size")]
        with tf.control_dependencies(checks):
            logits, new_state = self._model.step(ids, state)
        return {"logits": tf.cast(logits, tf.float32), "state": new_state}

    def _step_text(self, chars, state):
        """chars (B,) one character each, state (B, S) -> as `step`."""
        ids = self.encode(chars)
        check = tf.debugging.assert_equal(
            ids.row_lengths(), tf.ones_like(ids.row_lengths()),
            message="step_text: each string must be exactly one character")
        with tf.control_dependencies([check]):
            return self._step(tf.identity(ids.flat_values), state)

    def _generate(self, prime, length, temperature, top_k, seed):
        """prime (B,), scalars -> {"text": (B,), "generated": (B,)} strings."""
        tf.debugging.assert_non_negative(length, message="generate: length must be >= 0")
        seed = tf.cast(tf.math.floormod(seed, 2**31 - 1), tf.int32)
        ids = self.encode(prime)  # (B, None)
        batch = tf.shape(prime)[0]
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
        width = tf.maximum(tf.reduce_max(tf.concat([lengths, [1]], 0)), 1)
        padded = ids.to_tensor(0)
        padded = tf.pad(padded, [[0, 0], [0, width - tf.shape(padded)[1]]])  # (B, P)
        # An empty prime: one start character drawn uniformly with the seed.
        start = sampling.start_ids(batch, self._alphabet_size, seed)
        padded = tf.concat([tf.where(lengths > 0, padded[:, 0], start)[:, None],
                            padded[:, 1:]], axis=1)
        lengths = tf.maximum(lengths, 1)
        model = self._model

        def prime_one(t, state):  # teacher-forced, as sampling.sample reads its prime
            _, new_state = model(padded[:, t:t + 1], state)
            return t + 1, tf.where((t < lengths - 1)[:, None], new_state, state)

        _, state = tf.while_loop(lambda t, _: t < width - 1, prime_one,
                                 (tf.constant(0), model.zero_state(batch)))
        last = tf.gather(padded, lengths - 1, batch_dims=1)  # (B,)
        new_ids, state = self._sample(last, state, length, temperature, top_k, seed,
                                      tf.constant(0))
        generated = self.decode(new_ids)
        primes = self.decode(tf.RaggedTensor.from_tensor(padded, lengths=lengths))
        return {"text": tf.strings.join([primes, generated]), "generated": generated,
                "state": state}

    def _generate_more(self, last, state, length, temperature, top_k, seed, start):
        """last (B,) one character each, state (B, S), scalars, start ()
        -> {"generated": (B,) strings, "state": (B, S)}: continues `generate`."""
        tf.debugging.assert_non_negative(length, message="generate: length must be >= 0")
        tf.debugging.assert_non_negative(start, message="generate: start must be >= 0")
        seed = tf.cast(tf.math.floormod(seed, 2**31 - 1), tf.int32)
        ids = self.encode(last)
        check = tf.debugging.assert_equal(
            ids.row_lengths(), tf.ones_like(ids.row_lengths()),
            message="generate_more: each `last` must be exactly one character")
        with tf.control_dependencies([check]):
            new_ids, state = self._sample(tf.identity(ids.flat_values), state, length,
                                          temperature, top_k, seed, start)
        return {"generated": self.decode(new_ids), "state": state}

    def _sample(self, last, state, length, temperature, top_k, seed, start):
        """(B, length) ids generated after `last` from `state`, GENERATE_CHUNK per call
        of the compiled loop, and the final state (to feed the last id with)."""
        batch = tf.shape(last)[0]
        chunks = (length + GENERATE_CHUNK - 1) // GENERATE_CHUNK

        def one_chunk(c, last, state, out):
            n = tf.minimum(GENERATE_CHUNK, length - c * GENERATE_CHUNK)
            ids, state = self._generator(last, state, n, temperature, top_k, seed,
                                         start + c * GENERATE_CHUNK)  # (B, n)
            padded = tf.pad(ids, [[0, 0], [0, GENERATE_CHUNK - n]])  # (B, CHUNK)
            return c + 1, ids[:, -1], state, out.write(c, padded)

        def run():
            out = tf.TensorArray(tf.int32, size=chunks, element_shape=[None, GENERATE_CHUNK])
            _, _, new_state, out = tf.while_loop(
                lambda c, *_: c < chunks, one_chunk, (tf.constant(0), last, state, out))
            ids = tf.reshape(tf.transpose(out.stack(), [1, 0, 2]), [batch, -1])
            return ids[:, :length], new_state

        # An empty TensorArray cannot be stacked: length 0 generates nothing.
        return tf.cond(length > 0, run, lambda: (tf.zeros([batch, 0], tf.int32), state))

    def _score(self, text):
        """text (B,) -> {"bpc": (B,) float32, "num_predictions": (B,) int32}."""
        ids = self.encode(text)
        lengths = tf.cast(ids.row_lengths(), tf.int32)  # (B,)
        padded = ids.to_tensor(0)  # (B, L)
        batch, width = tf.shape(padded)[0], tf.shape(padded)[1]
        windows = (tf.maximum(width - 1, 0) + SCORE_WINDOW - 1) // SCORE_WINDOW
        padded = tf.pad(padded, [[0, 0], [0, windows * SCORE_WINDOW + 1 - width]])
        model = self._model

        def score_window(w, state, nats):
            start = w * SCORE_WINDOW
            window = padded[:, start:start + SCORE_WINDOW + 1]  # (B, W + 1)
            logits, state = model(window[:, :-1], state)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=window[:, 1:], logits=tf.cast(logits, tf.float32))  # (B, W)
            target_pos = start + 1 + tf.range(SCORE_WINDOW)  # padding is never a target
            mask = target_pos[None, :] < lengths[:, None]
            ce = tf.where(mask, tf.cast(ce, tf.float64), tf.zeros([], tf.float64))
            return w + 1, state, nats + tf.reduce_sum(ce, axis=1)

        _, _, nats = tf.while_loop(
            lambda w, *_: w < windows, score_window,
            (tf.constant(0), model.zero_state(batch), tf.zeros([batch], tf.float64)))
        count = tf.maximum(lengths - 1, 0)
        bpc = nats / tf.cast(count, tf.float64) / _LN2  # NaN (0/0) below 2 characters
        return {"bpc": tf.cast(bpc, tf.float32), "num_predictions": count}


def make_sampler(model, jit_compile):
    """The export's sampling loop: XLA-compiled if asked and XLA compiles it.

    Returns `sampling.make_generator`'s function (capacity GENERATE_CHUNK), with
    `.uses_xla()`. The first call (here, on one stream) decides: a model step that XLA
    cannot compile is exported with the plain loop.
    """
    plain = sampling.make_generator(model.step, jit_compile=False, capacity=GENERATE_CHUNK)
    if not jit_compile:
        plain.uses_xla = lambda: False
        return plain
    compiled = sampling.make_generator(model.step, capacity=GENERATE_CHUNK)
    generator = steps.XlaOrFallback(compiled, plain, "the export's sampler")
    generator(tf.zeros([1], tf.int32), model.zero_state(1), 2, tf.constant(1.0),
              tf.constant(0), tf.constant(0), 0)
    return generator
