"""Character language models: a cell plus the loop that runs it over a window.

Every model has the same interface, used by training, sampling and export:
  call(inputs (B, T) int ids, state) -> logits (B, T, A), new state   (teacher-forced)
  step(ids (B,), state)             -> logits (B, A), new state       (one character)
  zero_state(batch_size)            -> (B, state_size)

`call` takes the fast path of DESIGN.md: everything that does not depend on the
previous state is computed for the whole window with one matmul, and only the
recurrence (`tf_rnn.kernels.recurrence`) runs step by step. `call_reference` runs the
cell one step at a time; tests hold the two equal.
"""

import keras
import tensorflow as tf

from tf_rnn import cells as cells_lib
from tf_rnn import kernels


def _matmul(x, w):
    """(..., k) @ (k, m) -> (..., m) as one 2-D matmul."""
    lead = tf.shape(x)[:-1]
    y = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), w)
    return tf.reshape(y, tf.concat([lead, tf.shape(w)[-1:]], 0))


class CharModel(keras.Model):
    """Shared plumbing of the character models; subclasses set `self.cell`."""

    def __init__(self, alphabet_size, num_nodes, init="seed", init_mean=-0.1,
                 init_stddev=0.1, **kwargs):
        super().__init__(**kwargs)
        self.alphabet_size = alphabet_size
        self.num_nodes = num_nodes
        self.init = init
        self.init_mean = init_mean
        self.init_stddev = init_stddev
        self._initializers = cells_lib.initializers(init, init_mean, init_stddev)

    def _make_cell(self, cell):
        cell.build()
        self.built = True
        return cell

    @property
    def state_size(self):
        return self.cell.state_size

    def zero_state(self, batch_size):
        return tf.zeros([batch_size, self.state_size], dtype=self.compute_dtype)

    def one_hot(self, ids):
        return tf.one_hot(ids, self.alphabet_size, dtype=self.compute_dtype)

    def step(self, ids, state):
        """ids: (B,) -> logits (B, A), new state."""
        logits, new_state = self.cell(self.one_hot(ids), state)
        return logits, new_state

    def call_reference(self, inputs, state):
        """The plain loop: `step` once per time step. inputs (B, T) -> (B, T, A), state."""
        outputs = []
        for t in range(inputs.shape[1]):
            logits, state = self.step(inputs[:, t], state)
            outputs.append(logits)
        return tf.stack(outputs, axis=1), state

    def get_config(self):
        return {"name": self.name, "alphabet_size": self.alphabet_size,
                "num_nodes": self.num_nodes, "init": self.init,
                "init_mean": self.init_mean, "init_stddev": self.init_stddev}


@keras.saving.register_keras_serializable("tf_rnn")
class Arch1Model(CharModel):
    """Arch 1 (hidden feedback) with the restructured unroll.

    relu(concat(x·U, h·W) + b) = concat(q, r) with q = relu(x·U + b[:n]) depending on
    the input alone, and r = relu(q_prev·W[:n] + r_prev·W[n:] + b[n:]): only r is
    recurrent, so the sequential work per step is one (B, n) x (n, n) matmul.
    """

    def __init__(self, alphabet_size, num_nodes, **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.Arch1Cell(
            alphabet_size, num_nodes, kernel_initializer=kernel,
            recurrent_initializer=recurrent, dtype=self.dtype_policy))

    def call(self, inputs, state):
        cell, n = self.cell, self.num_nodes
        x = self.one_hot(tf.transpose(inputs))  # (T, B, A)
        q = tf.nn.relu(_matmul(x, cell.U) + cell.b[:n])  # (T, B, n)
        q_prev = tf.concat([state[None, :, :n], q[:-1]], axis=0)  # (T, B, n)
        p = _matmul(q_prev, cell.W[:n]) + cell.b[n:]  # (T, B, n)
        r = kernels.recurrence(p, state[:, n:], cell.W[n:], "relu")  # (T, B, n)
        h = tf.concat([q, r], axis=-1)  # (T, B, 2n)
        logits = _matmul(h, cell.V) + cell.c  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), h[-1]


@keras.saving.register_keras_serializable("tf_rnn")
class Arch2Model(CharModel):
    """Arch 2 (output feedback), trained with teacher forcing.

    The state is the previous output o_prev fed back, zeros at the start of a stream.
    With next-character targets the previous *target* is the current input, so
    teacher forcing feeds one_hot(x_t) back at every step after the first of a
    stream: the training window is fully parallel (the model is effectively a bigram
    model, as the seed says). Generation feeds back the model's own previous output:
    `feedback="sample"` the one-hot of the sampled character (which is the next input,
    so `step` uses one_hot(x_t) once the stream has started), `feedback="probs"` the
    softmax of the previous logits.
    """

    def __init__(self, alphabet_size, num_nodes, feedback="sample", **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        if feedback not in ("sample", "probs"):
            raise ValueError(f"Received an invalid value for argument `feedback`, expected "
                             f"'sample' or 'probs', got {feedback!r}.")
        self.feedback = feedback
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.Arch2Cell(
            alphabet_size, num_nodes, kernel_initializer=kernel,
            recurrent_initializer=recurrent, dtype=self.dtype_policy))

    def _started(self, state):
        """(B, 1): 1 where the stream has started (a non-zero state), else 0."""
        return tf.cast(tf.reduce_any(state != 0, axis=-1, keepdims=True), self.compute_dtype)

    def call(self, inputs, state):
        cell, n = self.cell, self.num_nodes
        x = self.one_hot(inputs)  # (B, T, A)
        o_prev = tf.concat([x[:, :1] * self._started(state)[:, None], x[:, 1:]], axis=1)
        a = tf.concat([_matmul(x, cell.U), _matmul(o_prev, cell.W)], axis=-1) + cell.b
        logits = _matmul(tf.tanh(a), cell.V) + cell.c  # (B, T, A)
        return logits, x[:, -1]

    def step(self, ids, state):
        x = self.one_hot(ids)
        if self.feedback == "sample":
            logits, _ = self.cell(x, x * self._started(state))
            return logits, x
        logits, _ = self.cell(x, state)
        return logits, tf.nn.softmax(logits)

    def get_config(self):
        return {**super().get_config(), "feedback": self.feedback}


@keras.saving.register_keras_serializable("tf_rnn")
class ElmanModel(CharModel):
    """The S3 char-RNN: h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h); y_t = h_t W_hy + b_y."""

    def __init__(self, alphabet_size, num_nodes, **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.ElmanCell(
            alphabet_size, num_nodes, alphabet_size, activation="tanh",
            kernel_initializer=kernel, recurrent_initializer=recurrent,
            dtype=self.dtype_policy))

    def call(self, inputs, state):
        cell = self.cell
        p = _matmul(self.one_hot(tf.transpose(inputs)), cell.W_xh) + cell.b_h  # (T, B, n)
        h = kernels.recurrence(p, state, cell.W_hh, "tanh")  # (T, B, n)
        logits = _matmul(h, cell.W_hy) + cell.b_y  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), h[-1]


MODEL_CLASSES = {"arch1": Arch1Model, "arch2": Arch2Model, "elman": ElmanModel}


def build_model(config, alphabet_size, dtype=None):
    """The model named by `config.model`, with its initialisation, weights built."""
    kwargs = dict(init=config.init, init_mean=config.init_mean,
                  init_stddev=config.init_stddev, dtype=dtype)
    if config.model == "arch2":
        kwargs["feedback"] = config.feedback
    return MODEL_CLASSES[config.model](alphabet_size, config.num_nodes, **kwargs)
