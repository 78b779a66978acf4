"""SavedModel export: a dedicated `tf.Module` that serves without tf_rnn installed.

`export(workdir, out, checkpoint="latest")` writes a checkpoint of a run (latest, best or
ckpt-N) as a SavedModel whose
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
state is only updated while it is inside its prime), then runs `tf_rnn.sampling`'s
generator from the prime's last character, as `sampling.sample` does. An empty prime
starts from a character drawn uniformly with the seed (it is part of "text").
Sampling is stateless: the same seed gives the same text. `score` is the mean
next-character cross-entropy in bits of each text, predicting characters 2..L from
the zero state (as `tf-rnn eval --batch-size 1`); texts shorter than 2 characters
score NaN. `assets.extra/tf_rnn.json` records the run, step and vocabulary.
"""

import contextlib
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf
import tqdm

from tf_rnn import logs
from tf_rnn.checks import positive_integer
from tf_rnn import preemption
from tf_rnn import sampling
from tf_rnn import steps
from tf_rnn import runs
from tf_rnn.errors import UserError
from tf_rnn.workdir import Workdir, atomic_write_text, write_failed

VOCAB_ASSET = "vocab.txt"
METADATA = os.path.join("assets.extra", "tf_rnn.json")
SIGNATURES = ("step", "step_text", "zero_state", "generate", "generate_more", "score")
# Characters per stream of one call of the (XLA) sampling loop: one compilation per
# batch size serves every length; longer texts run several calls carrying the state.
GENERATE_CHUNK = 4096
SCORE_WINDOW = 256  # characters scored per compiled window; the state carries across
_LN2 = math.log(2.0)


class ExportError(UserError):
    """An export that cannot be written or read as asked."""


class CharModelExport(tf.Module):
    """The serving module of a character model: its variables, vocabulary and functions.

    Args:
      model: a `tf_rnn.models.CharModel` with its weights.
      vocab: the `tf_rnn.vocab.Vocabulary` of its ids.
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
        object.__setattr__(self, "_generator", _sampler(model, jit_compile))
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
        """{name: concrete function} for `tf.saved_model.save(..., signatures=...)`."""
        return {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}

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


def _sampler(model, jit_compile):
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


def default_export_dir(workdir):
    """WORKDIR/export: where `tf-rnn export` writes when --out is not given."""
    return Workdir(workdir).path / "export"


def _check_target(out, workdir, overwrite):
    if out.exists() and not out.is_dir():
        raise ExportError(f"Export directory {str(out)!r} exists and is not a directory.")
    run = Workdir(workdir).path.resolve()
    if out.resolve() == run or out.resolve() in run.parents:
        raise ExportError(f"Export directory {str(out)!r} would replace the work directory "
                          f"{str(run)!r}; choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"Export directory {str(out)!r} exists and is not empty; "
                              f"pass --overwrite to replace it, or choose another --out.")
        if not (out / "saved_model.pb").is_file():  # --overwrite replaces exports only
            raise ExportError(f"Export directory {str(out)!r} is not empty and holds no "
                              f"SavedModel: not replacing it, even with --overwrite. "
                              f"Remove it yourself, or choose another --out.")


def _replace_dir(staging, out):
    """Puts the finished `staging` directory at `out`: old -> aside, new -> out, rm aside.

    Each step is one rename, so `out` is always absent, the old export or the new one:
    never a partly written directory.
    """
    if not out.exists():
        os.rename(staging, out)
        return
    aside = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old",
                                          dir=out.parent))
    os.rename(out, aside / "old")
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(aside / "old", out)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def export(workdir, out=None, overwrite=False, unknown=None, jit_compile=True,
           checkpoint="latest"):
    """Writes a checkpoint of `workdir` (the latest) as a SavedModel in `out`.

    The export is written beside `out` and renamed into place, so a crash leaves the
    previous export (or none), never half of one.

    Args:
      workdir: a trained run's directory.
      out: the export directory (default WORKDIR/export). If it exists it must be
        empty, unless `overwrite`.
      overwrite: replace an existing non-empty `out` that holds a SavedModel (a
        directory of other files is never replaced).
      unknown: "error" | "space" for characters outside the vocabulary in string
        inputs (default: the run's config.unknown).
      jit_compile: XLA-compile `generate`'s sampling loop (see `CharModelExport`).
      checkpoint: "latest", "best" or "ckpt-N" (`runs.load_model`).

    Returns:
      {"export_dir", "model", "step", "checkpoint" (the path exported), "which" (as
       asked), "best_valid_bpc" (a best's validation BPC, else None), "alphabet_size",
       "state_size", "signatures", "generate_xla"}.

    Raises:
      ExportError: `out` is a file, holds `workdir`, is non-empty without
        `overwrite`, or is non-empty and no SavedModel.
      DataError / WorkdirError: no trained run in `workdir`, or no such checkpoint.
    """
    out = pathlib.Path(default_export_dir(workdir) if out is None else out)
    out = out.expanduser().absolute()
    _check_target(out, workdir, overwrite)
    run_dir = Workdir(workdir).path.absolute()
    # Replacing the run's own export is writing into the run: not beside a live trainer.
    lock = (preemption.WorkdirLock(run_dir, "an export into it")
            if overwrite and run_dir in out.parents else contextlib.nullcontext())
    with lock:
        return _export(workdir, out, unknown, jit_compile, checkpoint)


def _export(workdir, out, unknown, jit_compile, checkpoint):
    loaded = runs.load_model(workdir, checkpoint)
    model, vocab, config = loaded
    info = {"export_dir": str(out), "model": config.model, **loaded.checkpoint,
            "alphabet_size": vocab.size, "state_size": int(model.state_size),
            "signatures": list(SIGNATURES)}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp",
                                            dir=out.parent))
    try:
        with tempfile.TemporaryDirectory() as asset_dir:
            module = CharModelExport(model, vocab, asset_dir, unknown or config.unknown,
                                     jit_compile)
            info["generate_xla"] = module.xla
            tf.saved_model.save(module, str(staging), signatures=module.signatures())
        meta = {**info, "vocab": vocab.chars, "unknown": unknown or config.unknown,
                "config": config.to_dict()}
        atomic_write_text(staging / METADATA, json.dumps(meta, indent=2) + "\n")
        os.chmod(staging / METADATA, 0o644)  # mkstemp/mkdtemp make them owner-only;
        os.chmod(staging, 0o755)  # a serving process may run as another user
        _replace_dir(staging, out)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, (OSError, tf.errors.OpError)):  # a full disk, a size limit
            needed = sum(v.numpy().nbytes for v in model.variables) + 200_000
            raise write_failed("the export", out, err, needed, "The previous export, if "
                               "any, is kept.") from None
        raise
    return info


def saved_model_path(export_dir):
    """The export directory as a path; ExportError when it holds no SavedModel."""
    path = pathlib.Path(export_dir).expanduser()
    if not (path / "saved_model.pb").is_file():
        raise ExportError(f"No SavedModel in {str(path)!r} (write one with `tf-rnn export`).")
    return path


def load_export(export_dir):
    """(the loaded SavedModel, its `METADATA`: the run, step, vocabulary, `unknown` and
    config) of an export directory; ExportError when it holds no SavedModel."""
    path = saved_model_path(export_dir)
    with logs.native_logs_filtered():  # loading prints TensorFlow's native log lines
        loaded = tf.saved_model.load(str(path))
    return loaded, json.loads((path / METADATA).read_text(encoding="utf-8"))


def sample_from_export(export_dir, prime="", length=100, temperature=1.0, top_k=0,
                       seed=None, num_streams=1, chunk_size=sampling.SAMPLE_CHUNK,
                       progress=False):
    """`num_streams` texts (prime + `length` generated characters) from an export.

    Needs only the export directory: the checkpoint and the work directory are not read.
    Generates `chunk_size` characters per call (`generate`, then `generate_more`
    carrying the state; the text does not depend on `chunk_size`), with a tqdm bar on
    stderr if `progress`. An export without `generate_more` (written before it
    existed) answers in one call.
    """
    sampling.check_sample_arguments(length, num_streams, temperature, top_k, prime)
    positive_integer("chunk_size", chunk_size)
    path = saved_model_path(export_dir)
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0] >> 1) if seed is None \
        else int(seed)
    # Loading and the first calls print TensorFlow's native log lines (the CLI filters
    # them already; a library caller gets the same quiet).
    with logs.native_logs_filtered():
        loaded = tf.saved_model.load(str(path))
        if not hasattr(loaded, "generate_more"):
            chunk_size = max(length, 1)
        with tqdm.tqdm(total=length * num_streams, disable=not progress, unit="char",
                       unit_scale=True, file=sys.stderr, desc="sample", leave=False) as bar:
            return _generate_in_chunks(loaded, [prime] * num_streams, length, chunk_size,
                                       (tf.constant(float(temperature)),
                                        tf.constant(int(top_k)),
                                        tf.constant(seed, tf.int64)), bar)


def _generate_in_chunks(loaded, primes, length, chunk_size, args, bar):
    """`generate` for the first chunk, `generate_more` for the others; the texts."""
    first = min(length, chunk_size)
    try:
        result = loaded.generate(tf.constant(primes), tf.constant(first), *args)
    except tf.errors.InvalidArgumentError as e:
        lines = [line.strip() for line in e.message.splitlines() if "assertion failed" in line]
        reason = lines[0] if lines else e.message.strip().splitlines()[-1]
        raise ExportError(f"The export rejected the prime {primes[0]!r}: {reason}") from None
    pieces = [[t.decode("utf-8")] for t in result["text"].numpy()]
    bar.update(first * len(primes))
    state = result.get("state")
    for start in range(first, length, chunk_size):
        n = min(chunk_size, length - start)
        result = loaded.generate_more(tf.constant([p[-1][-1] for p in pieces]), state,
                                      tf.constant(n), *args, tf.constant(start))
        state = result["state"]
        for piece, text in zip(pieces, result["generated"].numpy()):
            piece.append(text.decode("utf-8"))
        bar.update(n * len(primes))
    return ["".join(piece) for piece in pieces]
