"""Data and scoring of the toy sequence tasks: temporal XOR (S1), "hello" (S2) and
binary addition (S6).

Every task is a batch of float sequences: inputs (N, T, I), targets (N, T, O), fed
to a `tf_rnn.toys.sequence.ElmanSequenceModel` from the zero state. Scores come back per
member (random seed): model outputs are (N, T, K, O).
"""

import weakref

import numpy as np
import tensorflow as tf

from tf_rnn.base.checks import positive_integer
from tf_rnn.base.errors import ArgumentError
from tf_rnn.data.vocab import Vocabulary
from tf_rnn.engine import sampling

SEED_XOR_BITS = (0, 0, 1, 1, 0)  # the S1 seed's training stream; its targets 0?,0,1,0,1
_PREDICT = weakref.WeakKeyDictionary()


def _positive(name, value):
    return positive_integer(name, value, error=ArgumentError)


# --- S1: temporal XOR ---------------------------------------------------------------


def xor_task(bits):
    """Temporal XOR of bit streams: y_t = x_t XOR x_{t-1}; y_0 has no answer.

    Args:
      bits: (N, T) or (T,) 0/1 integers.

    Returns:
      inputs (N, T, 1) float32, targets (N, T, 1) float32 (target 0 at t = 0), and
      mask (T,) float32: 0 at t = 0 (the first output is ignored), 1 elsewhere.
    """
    bits = np.atleast_2d(np.asarray(bits, np.int64))
    if bits.shape[1] < 2 or not np.isin(bits, (0, 1)).all():
        raise ArgumentError(f"Received an invalid value for argument `bits`, expected 0/1 "
                            f"streams of length >= 2, got shape {bits.shape}.")
    targets = np.zeros_like(bits)
    targets[:, 1:] = bits[:, 1:] ^ bits[:, :-1]
    mask = np.ones(bits.shape[1], np.float32)
    mask[0] = 0.0
    return (bits[..., None].astype(np.float32), targets[..., None].astype(np.float32), mask)


def random_bits(num_streams, length, rng):
    """(num_streams, length) random 0/1 ints from a NumPy Generator."""
    return rng.integers(0, 2, size=(_positive("num_streams", num_streams),
                                    _positive("length", length)))


def bit_accuracy(outputs, targets, mask=None):
    """Fraction of (unmasked) sigmoid outputs on the right side of 0.5, per member.

    outputs: (N, T, K, O) logits; targets (N, T, O); mask (T,) -> (K,).
    """
    right = (np.asarray(outputs) > 0) == (np.asarray(targets)[:, :, None, :] > 0.5)
    right = right.all(axis=-1)  # (N, T, K)
    weights = np.ones(right.shape[1]) if mask is None else np.asarray(mask, np.float64)
    return np.einsum("ntk,t->k", right, weights) / (right.shape[0] * weights.sum())


# --- S6: binary addition ------------------------------------------------------------


def to_bits(values, bits):
    """Non-negative ints (N,) -> (N, bits) 0/1, least-significant bit first."""
    values = np.asarray(values, np.int64)
    if (values < 0).any() or (values >> _positive("bits", bits)).any():
        raise ArgumentError(f"Received an invalid value for argument `values`, expected "
                            f"integers in [0, 2**{bits}), got min {values.min()} max "
                         f"{values.max()}.")
    return (values[:, None] >> np.arange(bits)) & 1


def from_bits(bits):
    """(N, T) 0/1, least-significant first -> (N,) int64."""
    bits = np.asarray(bits, np.int64)
    return (bits << np.arange(bits.shape[1])).sum(axis=1)


def addition_task(a, b, bits):
    """a + b as sequences: inputs (N, bits, 2) (one bit of each addend per step,
    least-significant first), targets (N, bits, 1) the bits of the sum; float32."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    inputs = np.stack([to_bits(a, bits), to_bits(b, bits)], axis=-1)
    targets = to_bits(a + b, bits)[..., None]
    return inputs.astype(np.float32), targets.astype(np.float32)


def random_addends(n, bits, rng):
    """Two (n,) int64 arrays of addends < 2**(bits - 1), so the sum fits in `bits`."""
    high = 2 ** (_positive("bits", bits) - 1)
    return rng.integers(0, high, size=n), rng.integers(0, high, size=n)


def all_addend_pairs(bits):
    """Every pair of addends < 2**(bits - 1): two (4**(bits - 1),) int64 arrays."""
    a, b = np.meshgrid(np.arange(2 ** (bits - 1)), np.arange(2 ** (bits - 1)),
                       indexing="ij")
    return a.ravel(), b.ravel()


def exact_fraction(outputs, targets):
    """Fraction of sequences with every output bit right, per member.

    outputs (N, T, K, 1) logits, targets (N, T, 1) -> (K,).
    """
    right = (np.asarray(outputs) > 0) == (np.asarray(targets)[:, :, None, :] > 0.5)
    return right.all(axis=(1, 3)).mean(axis=0)


# --- S2: next symbol of a string ----------------------------------------------------


def alphabet_of(text, alphabet=None):
    """The `Vocabulary` of a task: `alphabet` in its order, else the distinct
    characters of `text` in order of first appearance ("hello" -> "helo")."""
    chars = alphabet if alphabet is not None else "".join(dict.fromkeys(text))
    return Vocabulary(chars)


def next_symbol_task(text, vocab):
    """One sequence predicting each next symbol of `text`: 'hell' -> 'ello'.

    Returns:
      inputs (1, L-1, A) one-hot of text[:-1], targets (1, L-1, A) one-hot of text[1:].
    """
    if len(text) < 2:
        raise ArgumentError(f"Received an invalid value for argument `text`, expected at least "
                            f"2 characters, got {text!r}.")
    one_hot = np.eye(vocab.size, dtype=np.float32)[vocab.encode(text)]  # (L, A)
    return one_hot[None, :-1], one_hot[None, 1:]


def greedy_continuations(model, vocab, prime, length, generator=None):
    """Each member's greedy continuation of `prime`, by the project's compiled sampler.

    Row k of the batch is member k (`ElmanSequenceModel.ids_step`): the prime is read
    with the teacher-forced `model(...)`, then `tf_rnn.engine.sampling.make_generator` runs
    `length` greedy steps (temperature 0) with the state carried from step to step.

    Returns:
      K strings, each the prime followed by `length` generated symbols.
    """
    if not prime:
        raise ArgumentError("Received an invalid value for argument `prime`, expected at "
                            "least one symbol, got ''.")
    ids = vocab.encode(prime)  # (P,)
    k = model.members
    state = model.zero_state(k)
    if len(ids) > 1:
        one_hot = np.eye(vocab.size, dtype=np.float32)[ids[:-1]]  # (P-1, A)
        _, state = model(tf.constant(np.tile(one_hot[None], (k, 1, 1))), state)
    generator = generator or sampling.make_generator(model.ids_step)
    out, _ = generator(tf.constant(np.full(k, ids[-1], np.int32)), state,
                       tf.constant(length), tf.constant(0.0), tf.constant(0), tf.constant(0))
    return [prime + vocab.decode(row) for row in out.numpy()]


def predict(model, inputs, batch_size=4096):
    """Per-member logits of whole sequences from the zero state, in chunks.

    inputs (N, T, I) -> (N, T, K, O) NumPy array.
    """
    inputs = np.asarray(inputs, np.float32)
    run = _PREDICT.get(model)
    if run is None:  # one compiled forward pass per model, reused by every check
        ref = weakref.ref(model)  # a strong reference here would keep the model alive
        run = _PREDICT[model] = tf.function(
            lambda x: ref()(x, ref().zero_state(tf.shape(x)[0]))[0], reduce_retracing=True)
    chunks = [run(tf.constant(inputs[i:i + batch_size]))
              for i in range(0, len(inputs), batch_size)]
    return model.per_member(tf.concat(chunks, 0)).numpy()


def first_exact_check(model, inputs, targets, probe=256, seed=0):
    """A `sequence.fit` check recording when each member first gets every sequence right.

    Scoring all the sequences is the costly part, so a fixed probe of `probe` of them
    screens first: the whole set is scored only when a member not yet recorded is
    exact on the probe (a member exact on all is exact on the probe, so nothing is
    missed).

    Args:
      model: the model being trained (K members).
      inputs, targets: (N, T, I), (N, T, 1) the sequences to get exactly right.

    Returns:
      check(steps_done) -> True once every member has been exact at some check, and
      `first` (K,) int64: the steps done at each member's first exact check, -1 if none.
    """
    inputs, targets = np.asarray(inputs, np.float32), np.asarray(targets, np.float32)
    pick = np.random.default_rng(seed).choice(len(inputs), min(probe, len(inputs)), False)
    first = np.full(model.members, -1, np.int64)

    def check(done):
        waiting = first < 0
        if (exact_fraction(predict(model, inputs[pick]), targets[pick])[waiting] == 1).any():
            exact = exact_fraction(predict(model, inputs), targets) == 1
            first[waiting & exact] = done
        return bool((first >= 0).all())

    return check, first


# --- Probes of a trained model ------------------------------------------------------


def sweep_weight(model, variable, index, values, inputs, targets, loss_fn):
    """The cost along one weight, every other weight held at its current value.

    Args:
      model: the network, e.g. one member `model.member(k)`.
      variable: one of its weights, e.g. `model.cell.W_hh` (context -> hidden).
      index: the entry of `variable` to sweep, e.g. (0, 1).
      values: (P,) the values it takes in turn.
      inputs, targets: the data the cost is measured on (full batch, zero state).
      loss_fn: (logits, targets) -> scalar, e.g. `sequence.make_loss("bce", mask)`.

    Returns:
      (P,) NumPy costs; the variable is restored afterwards.
    """
    inputs, targets = tf.constant(inputs), tf.constant(targets)
    cost = tf.function(lambda: loss_fn(model(inputs, model.zero_state(inputs.shape[0]))[0],
                                       targets))
    original = tf.identity(variable)
    costs = []
    try:
        for value in np.asarray(values, np.float32):
            variable.assign(tf.tensor_scatter_nd_update(original, [index], [value]))
            costs.append(float(cost()))
    finally:
        variable.assign(original)
    return np.array(costs)


def local_minima(costs, tol=1e-5):
    """How many interior points of a swept cost lie below both neighbours by > `tol`."""
    c = np.asarray(costs, np.float64)
    return int(((c[1:-1] < c[:-2] - tol) & (c[1:-1] < c[2:] - tol)).sum())
