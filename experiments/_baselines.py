"""The peers that `experiments.benchmark` measures tf_rnn against (not part of the library).

* `KerasCharRNN`: the Keras 3 character model of the tutorials: stateful `SimpleRNN(relu)`
  (the fastest peer on this machine), `LSTM` or `GRU` (the gated models people turn to), one-hot
  inputs, a `Dense` output layer, trained with `train_on_batch`.
* `NaiveArch1` / `NaiveArch2`: the seed's method in a plain `tf.function`: every time
  step multiplies one-hot inputs by the input matrix, projects its own output and
  takes its own softmax cross-entropy against one-hot labels.
* `PythonLoopSampler`: the TensorFlow text-generation tutorial's way of sampling, a
  Python loop calling a compiled one-step function once per character.

Each trainer has `train(window) -> loss`, taking one (B, T + 1) int window of a
`tf_rnn.data.BatchCursors`, and carries its state across windows itself.
"""

import keras
import numpy as np
import tensorflow as tf

from tf_rnn.engine import steps


def _schedule(initial, decay_steps, rate):
    return keras.optimizers.schedules.ExponentialDecay(initial, decay_steps, rate,
                                                       staircase=True)


class KerasCharRNN:
    """One-hot -> SimpleRNN(units, relu), LSTM(units) or GRU(units), stateful -> Dense(A).

    Args:
      alphabet_size: A.
      units: the recurrent width (for the speed rows, Arch 1's state 2n).
      batch_size, num_unrollings: the fixed (B, T) of the stateful layer.
      layer: "simple_rnn", "lstm" or "gru".
      optimizer: a Keras optimizer; default Adadelta(2.5) with global-norm clip 1.25, the
        seed's settings (the same work per step as tf_rnn's text8_arch1 preset).
    """

    def __init__(self, alphabet_size, units, batch_size, num_unrollings, layer="simple_rnn",
                 optimizer=None):
        inputs = keras.Input(batch_shape=(batch_size, None), dtype="int32")
        x = keras.layers.Lambda(lambda ids: keras.ops.one_hot(ids, alphabet_size))(inputs)
        if layer == "lstm":
            self.rnn = keras.layers.LSTM(units, stateful=True, return_sequences=True)
        elif layer == "gru":
            self.rnn = keras.layers.GRU(units, stateful=True, return_sequences=True)
        else:
            self.rnn = keras.layers.SimpleRNN(units, activation="relu", stateful=True,
                                              return_sequences=True)
        logits = keras.layers.Dense(alphabet_size)(self.rnn(x))
        self.model = keras.Model(inputs, logits)
        optimizer = optimizer or keras.optimizers.Adadelta(
            _schedule(2.5, 80000, 0.75), rho=0.95, epsilon=1e-8, global_clipnorm=1.25)
        self.model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))  # jit_compile="auto": Keras leaves XLA off on a CPU
        self.batch_size, self.num_unrollings = batch_size, num_unrollings

    def train(self, window):
        return self.model.train_on_batch(window[:, :-1], window[:, 1:])

    def evaluate(self, ids):
        """Bits per character over `ids`, scored like `tf_rnn.engine.steps.evaluate`.

        The text is cut into `batch_size` streams, each starting from the zero state and
        carrying it across windows; the training state is restored afterwards.
        """
        ids = np.asarray(ids)
        B, T = self.batch_size, self.num_unrollings
        streams = steps.scoring_streams(ids, B)  # the cut of tf_rnn.engine.steps.evaluate
        length = streams.shape[1] - 1
        saved = [v.numpy() for v in self.rnn.states]
        self.rnn.reset_states()
        nats = 0.0
        for start in range(0, length, T):
            window = streams[:, start:start + T + 1]
            logits = self.model(window[:, :-1], training=False)
            nats += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=window[:, 1:], logits=logits)))
        for v, value in zip(self.rnn.states, saved):
            v.assign(value)
        return nats / (B * length) / np.log(2.0)


class _Naive(tf.Module):
    """Shared training step of the naive baselines: the seed's loss, Keras optimizer."""

    def __init__(self, alphabet_size, batch_size, state_size, optimizer):
        super().__init__()
        self.alphabet_size = alphabet_size
        self.optimizer = optimizer
        self.state = tf.zeros([batch_size, state_size])
        self._step = tf.function(self._train_step)

    def _weight(self, shape, stddev=0.1):
        return tf.Variable(tf.random.truncated_normal(shape, -0.1, stddev))

    def _train_step(self, inputs, targets, state):
        with tf.GradientTape() as tape:
            logits, new_state = self(inputs, state, targets)
            labels = tf.one_hot(targets, self.alphabet_size)  # (B, T, A), as the seed feeds
            # One softmax cross-entropy per step, as each step's output is its own op.
            losses = [tf.nn.softmax_cross_entropy_with_logits(labels[:, t], logits[:, t])
                      for t in range(logits.shape[1])]
            loss = tf.reduce_mean(tf.stack(losses))
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, 1.25)
        self.optimizer.apply(grads, variables)
        return loss, new_state

    def train(self, window):
        loss, self.state = self._step(window[:, :-1], window[:, 1:], self.state)
        return float(loss)


class NaiveArch1(_Naive):
    """Arch 1 step by step: h = relu(concat(x_t·U, h·W) + b); logits_t = h·V + c."""

    def __init__(self, alphabet_size, num_nodes, batch_size):
        A, n = alphabet_size, num_nodes
        optimizer = keras.optimizers.Adadelta(_schedule(2.5, 80000, 0.75), rho=0.95,
                                              epsilon=1e-8)
        super().__init__(A, batch_size, 2 * n, optimizer)
        self.U, self.W = self._weight([A, n]), self._weight([2 * n, n])
        self.V, self.b = self._weight([2 * n, A]), tf.Variable(tf.zeros([2 * n]))
        self.c = tf.Variable(tf.zeros([A]))

    def __call__(self, inputs, state, targets=None):
        """inputs (B, T) -> logits (B, T, A), state (B, 2n); `targets` is not used."""
        h, outputs = state, []
        for t in range(inputs.shape[1]):
            x = tf.one_hot(inputs[:, t], self.alphabet_size)
            h = tf.nn.relu(tf.concat([x @ self.U, h @ self.W], axis=1) + self.b)
            outputs.append(h @ self.V + self.c)
        return tf.stack(outputs, axis=1), h


class NaiveArch2(_Naive):
    """Arch 2 step by step with teacher forcing: o_prev is the previous one-hot label."""

    def __init__(self, alphabet_size, num_nodes, batch_size):
        A, n = alphabet_size, num_nodes
        optimizer = keras.optimizers.SGD(_schedule(2.5, 5000, 0.1))
        super().__init__(A, batch_size, A, optimizer)
        self.U, self.W = self._weight([A, n]), self._weight([A, n])
        self.V, self.b = self._weight([2 * n, A]), tf.Variable(tf.zeros([2 * n]))
        self.c = tf.Variable(tf.zeros([A]))

    def __call__(self, inputs, state, targets):
        """inputs, targets (B, T) -> logits (B, T, A), state: the last one-hot label."""
        o_prev, outputs = state, []
        for t in range(inputs.shape[1]):
            x = tf.one_hot(inputs[:, t], self.alphabet_size)
            h = tf.tanh(tf.concat([x @ self.U, o_prev @ self.W], axis=1) + self.b)
            outputs.append(h @ self.V + self.c)
            o_prev = tf.one_hot(targets[:, t], self.alphabet_size)  # teacher forcing
        return tf.stack(outputs, axis=1), o_prev


class PythonLoopSampler:
    """One compiled step (model step + `tf.random.categorical`) called once per character.

    Args:
      step_fn: (ids (B,), state) -> (logits (B, A), new state), e.g. `model.step`.
    """

    def __init__(self, step_fn):
        @tf.function
        def one_step(ids, state, temperature):
            logits, state = step_fn(ids, state)
            return tf.random.categorical(logits / temperature, 1, dtype=tf.int32)[:, 0], state

        self._one_step = one_step

    def generate(self, first_ids, state, length, temperature=1.0):
        """(B,) ids, state -> (B, length) int ids, drawn one Python iteration each."""
        ids, out = tf.constant(first_ids, tf.int32), []
        temperature = tf.constant(float(temperature))
        for _ in range(length):
            ids, state = self._one_step(ids, state, temperature)
            out.append(ids.numpy())
        return np.stack(out, axis=1)
