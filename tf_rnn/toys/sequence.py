"""Elman networks over float input sequences, for the toy tasks (S1, S2, S6).

`ElmanSequenceModel` runs K independent Elman networks ("members", one per random
seed) as ONE network: member k owns the k-th block of n hidden units, the recurrent
and output weights are masked block-diagonal, so each member's gradient is exactly
what it would be alone, and a loss summed over members trains K runs in one compiled
step (with an element-wise optimizer: SGD, Adam, Adagrad; not a global-norm clip).

Shapes: B batch, T time, I inputs, n hidden units per member, O outputs per member,
K members; the model's outputs are (B, T, K·O), member k's in columns [kO, (k+1)O).
"""

import sys

import keras
import numpy as np
import tensorflow as tf
import tqdm

from tf_rnn.base import logs
from tf_rnn.base.checks import positive_integer
from tf_rnn.engine import summaries
from tf_rnn.models import cells as cells_lib, kernels
from tf_rnn.models.charmodel import matmul_last_axis

LOSSES = ("bce", "ce", "sse")


def _block_mask(k, rows, cols, dtype):
    """(k·rows, k·cols): ones on the k diagonal blocks of (rows, cols), zeros elsewhere."""
    return np.kron(np.eye(k), np.ones((rows, cols))).astype(dtype)


def _member_initializer(identifier, member):
    """A fresh initializer for `member`; a seeded one gets seed + member, so members differ."""
    config = keras.initializers.serialize(keras.initializers.get(identifier))
    if config.get("config", {}).get("seed") is not None:
        config = {**config, "config": {**config["config"],
                                       "seed": config["config"]["seed"] + member}}
    return keras.initializers.deserialize(config)


@keras.saving.register_keras_serializable("tf_rnn")
class ElmanSequenceModel(keras.Model):
    """K Elman networks h_t = act(x_t W_xh + h_{t-1} W_hh + b_h), y_t = h_t W_hy + b_y.

    One `tf_rnn.models.cells.ElmanCell` of K·n units and K·O outputs holds every member's
    weights; each member's blocks are drawn by the initializers as for a lone network
    (I, n), (n, n), (n, O); the blocks between members are zero and masked out. `call`
    projects the whole window at once and runs only the recurrence step by step
    (`tf_rnn.models.kernels.recurrence`); `call_reference` runs the cell one step at a time.

    Args:
      input_size: I, features per time step (e.g. 1 bit, 2 bits, a one-hot symbol).
      units: n, hidden ("context") units per member.
      output_size: O, outputs per member (logits; the sigmoid/softmax is in the loss).
      activation: hidden non-linearity, "sigmoid", "tanh" or "relu".
      members: K independent networks trained side by side.
      use_bias: False freezes both biases at zero (the binary-addition seed has none).
      kernel_initializer, recurrent_initializer: Keras initializer identifiers.
    """

    def __init__(self, input_size, units, output_size, activation="sigmoid", members=1,
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("input_size", input_size), ("units", units),
                            ("output_size", output_size), ("members", members)):
            positive_integer(name, value)
        self.input_size, self.units, self.output_size = input_size, units, output_size
        self.activation, self.members, self.use_bias = activation, members, bool(use_bias)
        self.kernel_initializer = keras.initializers.serialize(
            keras.initializers.get(kernel_initializer))
        self.recurrent_initializer = keras.initializers.serialize(
            keras.initializers.get(recurrent_initializer))
        self.cell = cells_lib.ElmanCell(
            input_size, members * units, members * output_size, activation=activation,
            kernel_initializer="zeros", recurrent_initializer="zeros",
            dtype=self.dtype_policy)
        self.cell.build()
        if not self.use_bias:
            self.cell.b_h.trainable = self.cell.b_y.trainable = False
        dtype = self.cell.W_hh.dtype
        self._mask_hh = _block_mask(members, units, units, dtype)  # (Kn, Kn)
        self._mask_hy = _block_mask(members, units, output_size, dtype)  # (Kn, KO)
        w_xh, w_hh, w_hy = (np.zeros(v.shape, dtype)
                            for v in (self.cell.W_xh, self.cell.W_hh, self.cell.W_hy))
        n, o = units, output_size
        for k in range(members):  # each member drawn as a lone network would be
            kernel = _member_initializer(self.kernel_initializer, k)
            h = slice(k * n, (k + 1) * n)
            w_xh[:, h] = kernel((input_size, n))
            w_hh[h, h] = _member_initializer(self.recurrent_initializer, k)((n, n))
            w_hy[h, k * o:(k + 1) * o] = kernel((n, o))
        for variable, value in zip((self.cell.W_xh, self.cell.W_hh, self.cell.W_hy),
                                   (w_xh, w_hh, w_hy)):
            variable.assign(value)
        self.built = True

    @property
    def state_size(self):
        return self.members * self.units

    def zero_state(self, batch_size):
        """(B, K·n) zeros: the context units start at 0, as in the seeds."""
        return tf.zeros([batch_size, self.state_size], dtype=self.compute_dtype)

    def weights_masked(self):
        """(W_xh (I, Kn), W_hh (Kn, Kn), b_h (Kn,), W_hy (Kn, KO), b_y (KO,)), with the
        blocks between members held at zero (and no gradient reaching them)."""
        c = self.cell
        return (c.W_xh, c.W_hh * self._mask_hh, c.b_h, c.W_hy * self._mask_hy, c.b_y)

    def call(self, inputs, state=None):
        """inputs (B, T, I), state (B, K·n) -> logits (B, T, K·O), last state (B, K·n).

        No state means the zero state, with the batch size read from the tensor (so a
        `keras.Input` of unknown batch works too)."""
        w_xh, w_hh, b_h, w_hy, b_y = self.weights_masked()
        x = tf.transpose(tf.cast(inputs, self.compute_dtype), [1, 0, 2])  # (T, B, I)
        if state is None:
            state = self.zero_state(tf.shape(x)[1])
        p = matmul_last_axis(x, w_xh) + b_h  # (T, B, Kn)
        h = kernels.recurrence(p, state, w_hh, self.activation)  # (T, B, Kn)
        logits = matmul_last_axis(h, w_hy) + b_y  # (T, B, KO)
        return tf.transpose(logits, [1, 0, 2]), h[-1]

    def step(self, x, state):
        """One time step. x (B, I), state (B, K·n) -> logits (B, K·O), new state."""
        h = self.hidden_step(x, state)
        return self.readout(h), h

    # The probe protocol of `tf_rnn.models` (what `tf_rnn.inspect.probes` asks): the step
    # split at the hidden layer, which is the state; the masked weights throughout.
    recurrent_units = None

    def hidden_step(self, x, state):
        """x (B, I), state (B, K·n) -> the new hidden layer h (B, K·n)."""
        w_xh, w_hh, b_h, _, _ = self.weights_masked()
        return kernels.activation_fn(self.activation)(
            tf.matmul(tf.cast(x, self.compute_dtype), w_xh) + tf.matmul(state, w_hh) + b_h)

    def readout(self, h):
        """h (B, K·n) -> logits (B, K·O)."""
        _, _, _, w_hy, b_y = self.weights_masked()
        return tf.matmul(h, w_hy) + b_y

    def carry(self, h, x):
        return h

    @property
    def hidden_size(self):
        return self.state_size

    def recurrent_matrix(self):
        """The masked block-diagonal W_hh (K·n, K·n): one block per member."""
        return self.weights_masked()[1]

    def ids_step(self, ids, state):
        """The sampler's step over one-hot symbols; row r of the batch is member r mod K.

        ids (B,) int -> logits (B, O) of each row's own member, new state (B, K·n).
        """
        x = tf.one_hot(ids, self.input_size, dtype=self.compute_dtype)
        logits, state = self.step(x, state)
        member = tf.math.floormod(tf.range(tf.shape(ids)[0]), self.members)  # (B,)
        logits = tf.reshape(logits, [-1, self.members, self.output_size])  # (B, K, O)
        return tf.gather(logits, member, axis=1, batch_dims=1), state

    def call_reference(self, inputs, state):
        """The cell one step at a time: the definition `call` must match."""
        outputs = []
        for t in range(inputs.shape[1]):
            logits, state = self.cell(tf.cast(inputs[:, t], self.compute_dtype), state)
            outputs.append(logits)
        return tf.stack(outputs, axis=1), state

    def per_member(self, logits):
        """(..., K·O) -> (..., K, O)."""
        return tf.reshape(logits, tf.concat(
            [tf.shape(logits)[:-1], [self.members, self.output_size]], 0))

    def member(self, k):
        """A one-member copy of member `k` (same weights), e.g. to study it alone."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < self.members:
            raise ValueError(f"Received an invalid value for argument `k`, expected a "
                             f"member in [0, {self.members}), got {k!r}.")
        single = ElmanSequenceModel.from_config({**self.get_config(), "members": 1,
                                                 "name": f"{self.name}_member_{k}"})
        h, o = slice(k * self.units, (k + 1) * self.units), \
            slice(k * self.output_size, (k + 1) * self.output_size)
        c, s = self.cell, single.cell
        for dst, value in ((s.W_xh, c.W_xh[:, h]), (s.W_hh, c.W_hh[h, h]), (s.b_h, c.b_h[h]),
                           (s.W_hy, c.W_hy[h, o]), (s.b_y, c.b_y[o])):
            dst.assign(value)
        return single

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "units": self.units,
                "output_size": self.output_size, "activation": self.activation,
                "members": self.members, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "recurrent_initializer": self.recurrent_initializer}


def per_member_loss(kind, logits, targets, mask=None, reduce_time="mean"):
    """The loss of each member. logits (B, T, K·O), targets (B, T, O) floats -> (K,).

    Args:
      kind: "bce" sigmoid cross-entropy summed over the O outputs; "ce" softmax
        cross-entropy (one-hot targets); "sse" the binary-addition seed's cost,
        0.5 · sum over outputs of (y - sigmoid(logit))^2.
      mask: optional (T,) or (B, T) weights; 0 leaves a step out (S1's first output).
      reduce_time: "mean" over the (masked) time steps, or "sum" over them; the batch
        is always averaged.
    """
    for name, value, choices in (("kind", kind, LOSSES),
                                 ("reduce_time", reduce_time, ("mean", "sum"))):
        if value not in choices:
            raise ValueError(f"Received an invalid value for argument `{name}`, expected "
                             f"one of {list(choices)}, got {value!r}.")
    targets = tf.cast(targets, logits.dtype)
    out = targets.shape[-1]
    z = tf.reshape(logits, tf.concat([tf.shape(logits)[:-1], [-1, out]], 0))  # (B, T, K, O)
    y = tf.broadcast_to(targets[:, :, None, :], tf.shape(z))
    if kind == "bce":
        loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z), -1)
    elif kind == "ce":
        loss = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z)
    else:
        loss = 0.5 * tf.reduce_sum(tf.square(y - tf.sigmoid(z)), -1)
    # loss: (B, T, K)
    weights = tf.ones(tf.shape(loss)[:2], loss.dtype) if mask is None else \
        tf.broadcast_to(tf.cast(mask, loss.dtype), tf.shape(loss)[:2])  # (B, T)
    total = tf.einsum("btk,bt->k", loss, weights)
    if reduce_time == "mean":
        return total / tf.reduce_sum(weights)
    return total / tf.cast(tf.shape(loss)[0], loss.dtype)


def make_loss(kind, mask=None, reduce_time="mean"):
    """loss_fn(logits, targets) -> scalar for `steps.make_train_step`: the members' sum."""
    return lambda logits, targets: tf.reduce_sum(
        per_member_loss(kind, logits, targets, mask, reduce_time))


def fit(model, train_step, batches, steps, *, check=None, check_every=0, log_every=100,
        writer=None, progress=True, desc="train"):
    """Runs the project's train step on whole sequences, each from the zero state.

    Args:
      model: the `ElmanSequenceModel` being trained (its zero state, its K members).
      train_step: `tf_rnn.engine.steps.make_train_step(model, optimizer, ..., loss_fn)`.
      batches: an (inputs (B, T, I), targets) pair used at every step (full batch), or
        a callable step -> such a pair (a new sample per step).
      steps: the most steps to run.
      check: optional callable(steps_done) -> bool, called every `check_every` steps
        and after the last; True stops training (e.g. the task is solved).
      writer: optional `tf.summary` writer: `train/loss`, the mean over members.

    Returns:
      {"steps": steps run, "loss": last mean loss per member, "solved": last check}.
    """
    fixed = None if callable(batches) else tuple(tf.constant(b) for b in batches)
    zero = {}
    loss, solved, done = float("nan"), False, 0
    bar = tqdm.tqdm(total=steps, disable=not progress, desc=desc, unit="step",
                    file=sys.stderr, dynamic_ncols=True)
    with bar:
        for done in range(1, steps + 1):
            inputs, targets = fixed or batches(done - 1)
            b = int(inputs.shape[0])
            if b not in zero:
                zero[b] = model.zero_state(b)
            metrics, _ = train_step(inputs, targets, zero[b])
            bar.update(1)
            if done % log_every == 0 or done == steps:
                loss = float(metrics["loss"]) / model.members
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                if not progress:  # no bar: a log file still gets the loss as it goes
                    logs.note(f"{desc} step {done}/{steps}: loss {loss:.4f}")
                if writer is not None:
                    with writer.as_default():
                        tf.summary.scalar("train/loss", loss, step=done,
                                          description=summaries.describe("train/loss"))
            if check is not None and ((check_every and done % check_every == 0)
                                      or done == steps):
                solved = bool(check(done))
                if solved:
                    break
    if done and done % log_every:
        loss = float(metrics["loss"]) / model.members
    return {"steps": done, "loss": loss, "solved": solved}

