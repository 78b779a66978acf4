"""Text generation in one compiled loop: no Python runs per character.

`make_generator(step_fn)` compiles a `tf.while_loop` over a step function
`step_fn(ids (B,), state) -> (logits (B, A), new_state)`; `sample()` is the
convenience that primes a model with text, generates in chunks (with a progress bar
if asked) and decodes the result. Step t of a stream draws its random number from
(seed, t) alone, so chunked and one-piece generation give the same text.
"""

import sys

import numpy as np
import tensorflow as tf
import tqdm

from tf_rnn.base import draws
from tf_rnn.base.checks import positive_integer
from tf_rnn.base.errors import ArgumentError

SAMPLE_CHUNK = 20_000  # characters per stream per compiled call in `sample`
RNG_ALG = "philox"  # the generator of the start characters (same in sampling and export)


# Up to this alphabet size the cumulative sum of `choose` is one (A, A) matmul, which
# XLA runs faster on a CPU than a cumsum; beyond it, the matmul's A^2 work would not pay.
_MATMUL_CUMSUM_MAX = 256


def choose(logits, temperature, top_k, seed):
    """Picks the next ids from logits (B, A).

    Sampling inverts the cumulative distribution with one uniform number per row,
    instead of one per (row, character) as `tf.random.stateless_categorical` draws:
    random numbers are the costly part of a compiled sampling step, and this made
    64-stream generation about 2x faster (measured in `experiments.benchmark`).

    Args:
      logits: (B, A) unnormalised log-probabilities.
      temperature: scalar; <= 0 means greedy (argmax).
      top_k: scalar int; > 0 keeps only the k most likely characters.
      seed: (2,) int32 seed of the stateless sampler for this step.

    Returns:
      (B,) int32 ids.
    """
    logits = tf.cast(logits, tf.float32)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    size = tf.shape(logits)[-1]
    k = tf.minimum(tf.cast(top_k, tf.int32), size)

    def keep_top_k():
        kth = tf.math.top_k(logits, k=tf.maximum(k, 1)).values[:, -1:]
        return tf.where(logits < kth, tf.constant(-np.inf, logits.dtype), logits)

    logits = tf.cond(k > 0, keep_top_k, lambda: logits)
    t = tf.maximum(tf.cast(temperature, tf.float32), 1e-6)
    # Unnormalised probabilities, 1 at the most likely character, 0 where masked.
    weights = tf.exp((logits - tf.reduce_max(logits, axis=-1, keepdims=True)) / t)  # (B, A)
    if logits.shape[-1] is not None and logits.shape[-1] <= _MATMUL_CUMSUM_MAX:
        upper = tf.linalg.band_part(tf.ones([size, size]), 0, -1)  # (A, A): 1 where i <= j
        cdf = tf.matmul(weights, upper)  # (B, A) running sums
    else:
        cdf = tf.cumsum(weights, axis=-1)
    # tf_rnn.base.draws: the compiled sampler and an export (not compiled, for TF Serving)
    # draw the same numbers from the same seed.
    u = draws.uniform(seed, tf.shape(greedy)[:1])[:, None] * cdf[:, -1:]  # (B, 1)
    # The first j with cdf_j > u: characters of probability 0 are never picked.
    drawn = tf.reduce_sum(tf.cast(cdf <= u, tf.int32), axis=-1)  # (B,)
    drawn = tf.where(drawn < size, drawn, greedy)  # u rounded up to the total: rare
    return tf.where(tf.cast(temperature, tf.float32) > 0, drawn, greedy)


def make_generator(step_fn, jit_compile=True, capacity=None):
    """Compiles generate(first_ids, state, length, temperature, top_k, seed, start=0).

    first_ids: (B,) the ids fed at the first step (the last primed character);
    state: the state before that step; length: how many ids to produce; seed: int;
    start: how many ids this stream has generated before (0 for a new stream): step t
    draws its random number with (seed, start + t), so a text generated in chunks that
    carry (last id, state) is the same as the text generated at once.
    Returns (B, length) int32 ids and the final state (the one to feed the last id
    with). The loop is XLA-compiled by default: per-character overhead is then a few
    microseconds, not a graph op each.

    XLA compiles once per batch size and output buffer size. With `capacity` None the
    buffer is `length` (one compilation per length: a CLI run or a training sample asks
    for one or two); with `capacity` an int, the buffer holds `capacity` ids and any
    `length` <= `capacity` reuses one compilation (what a served export needs).
    """

    def run(first_ids, state, length, temperature, top_k, seed, start):
        # Without XLA the buffer may have a run-time size; with XLA it must be fixed.
        size = capacity if capacity is not None and jit_compile else length
        out = tf.TensorArray(tf.int32, size=size, element_shape=[None])
        base = tf.cast(seed, tf.int32)

        def body(t, ids, state, out):
            logits, state = step_fn(ids, state)
            ids = choose(logits, temperature, top_k, tf.stack([base, start + t]))
            return t + 1, ids, state, out.write(t, ids)

        _, _, state, out = tf.while_loop(
            lambda t, *_: t < length, body,
            (tf.constant(0), tf.cast(first_ids, tf.int32), state, out))
        return tf.transpose(out.stack()), state  # (B, size): ids [length:] unwritten (0)

    compiled = tf.function(run, jit_compile=jit_compile, reduce_retracing=True)

    def generate(first_ids, state, length, temperature, top_k, seed, start=0):
        length = tf.convert_to_tensor(length, tf.int32)
        if capacity is not None:  # a longer length would write past the fixed buffer
            tf.debugging.assert_less_equal(length, capacity, message=f"generate: length "
                                           f"must be <= the generator's capacity {capacity}")
        batch = tf.shape(first_ids)[0]
        if jit_compile:  # XLA compiles per shape: batches padded to a power of two
            first_ids, state = _pad_batch((first_ids, state), _batch_bucket(batch) - batch)
        ids, state = compiled(first_ids, state, length, temperature, top_k, seed,
                              tf.convert_to_tensor(start, tf.int32))
        state = tf.nest.map_structure(lambda s: s[:batch], state)
        return tf.reshape(ids[:batch, :length], [batch, length]), state

    return generate


# Python numbers, not a tensor: importing a tf_rnn module must run no TensorFlow op
# (MultiWorkerMirroredStrategy has to be created before the first one).
_BUCKETS = tuple(1 << i for i in range(31))


def _batch_bucket(batch):
    """() int32: the least power of two >= `batch` (the batch XLA compiles for).

    Rows are independent (each row's draw uses its own index, `tf_rnn.base.draws`), so the
    padding rows change nothing in the others; 1..64 streams take 7 compilations.
    """
    buckets = tf.constant(_BUCKETS, tf.int32)
    return tf.gather(buckets, tf.searchsorted(buckets, tf.reshape(batch, [1]))[0])


def _pad_batch(tensors, rows):
    """Each tensor of the structure with `rows` zero rows appended (axis 0)."""
    def pad(t):
        zeros = tf.zeros(tf.concat([[rows], tf.shape(t)[1:]], 0), t.dtype)
        return tf.ensure_shape(tf.concat([t, zeros], 0), [None, *t.shape[1:]])

    return tf.nest.map_structure(pad, tensors)


def start_ids(num_streams, alphabet_size, seed):
    """(B,) int32 first characters of streams with an empty prime, drawn uniformly.

    The export's `generate` draws them the same way: the same seed, the same text.
    """
    return tf.random.stateless_uniform(
        [num_streams], tf.stack([tf.cast(seed, tf.int32), -1]), minval=0,
        maxval=alphabet_size, dtype=tf.int32, alg=RNG_ALG)


def encode_prime(vocab, prime, num_streams, seed=0):
    """(B, P) prime ids; an empty prime starts each stream with a random character."""
    if prime:
        ids = vocab.encode(prime)
        return np.tile(ids[None, :], (num_streams, 1))
    return start_ids(num_streams, vocab.size, seed).numpy()[:, None]


def check_sample_arguments(length, num_streams, temperature=1.0, top_k=0, prime=None):
    """ValueError naming the argument for a value that would be silently misread.

    `length` counts the characters generated after the prime; an empty prime starts
    from one random character (part of the text), so it needs `length` >= 1.
    `temperature` <= 0 is greedy; NaN or infinite is an error. `top_k` 0 is off.
    """
    if length < 0:
        raise ArgumentError(f"Received an invalid value for argument `length`, expected a "
                            f"non-negative integer, got {length!r}.")
    if length == 0 and prime == "":
        raise ArgumentError("Received an invalid value for argument `length`, expected a "
                            "positive integer when the prime is empty (it would generate "
                            "nothing), got 0.")
    positive_integer("num_streams", num_streams, ArgumentError)
    if not np.isfinite(temperature):
        raise ArgumentError(f"Received an invalid value for argument `temperature`, expected "
                            f"a finite number (<= 0: greedy), got {temperature!r}.")
    if top_k < 0:
        raise ArgumentError(f"Received an invalid value for argument `top_k`, expected a "
                            f"non-negative integer (0: off), got {top_k!r}.")


def sample(model, vocab, prime="", length=100, temperature=1.0, top_k=0, seed=None,
           num_streams=1, generator=None, chunk_size=SAMPLE_CHUNK, progress=False):
    """Generates `num_streams` texts of `length` characters after `prime`.

    The prime is read with the model's teacher-forced window (`model(inputs, state)`),
    then the last prime character starts the compiled generation loop, which runs in
    chunks of `chunk_size` characters carrying (last id, state): the text does not
    depend on `chunk_size`, and the compiled loop's buffer stays (B, chunk_size).

    Args:
      generator: a `make_generator(model.step, ...)` to reuse (default: a new one whose
        capacity is one chunk); it must accept `min(length, chunk_size)` ids per call.
      progress: show a tqdm bar on stderr, advanced after each chunk.

    Returns:
      A list of `num_streams` strings, each the prime followed by the generated text.
    """
    check_sample_arguments(length, num_streams, temperature, top_k, prime)
    positive_integer("chunk_size", chunk_size)
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0] >> 1) if seed is None \
        else int(seed)
    prime_ids = encode_prime(vocab, prime, num_streams, seed % (2**31 - 1))
    state = model.zero_state(num_streams)
    if prime_ids.shape[1] > 1:
        _, state = model(tf.constant(prime_ids[:, :-1]), state)
    chunk_size = min(chunk_size, max(length, 1))
    generator = generator or make_generator(model.step, capacity=chunk_size)
    pieces = [[vocab.decode(row)] for row in prime_ids]
    last = tf.constant(prime_ids[:, -1])
    with tqdm.tqdm(total=length * num_streams, disable=not progress, unit="char",
                   unit_scale=True, file=sys.stderr, desc="sample", leave=False) as bar:
        for start in range(0, length, chunk_size):
            n = min(chunk_size, length - start)
            ids, state = generator(last, state, tf.constant(n), tf.constant(float(temperature)),
                                   tf.constant(int(top_k)), tf.constant(seed % (2**31 - 1)),
                                   tf.constant(start))
            ids = ids.numpy()  # (B, n)
            last = tf.constant(ids[:, -1])
            for row, piece in zip(ids, pieces):
                piece.append(vocab.decode(row))
            bar.update(n * num_streams)
    return ["".join(piece) for piece in pieces]
