"""Recurrent cells: each computes ONE time step and declares its state size.

The sequence loops (and their fast paths) live in `tf_rnn.models`; the cells are the
plain, readable definition of the math, used as the reference the fast paths are
tested against, and by the one-character-at-a-time paths (sampling, export).

Shapes: B batch, A alphabet (or input) size, n = num_nodes.
"""

import keras
import tensorflow as tf


def initializers(init, mean=-0.1, stddev=0.1):
    """Keras initializers for (input/output kernels, recurrent kernel) of a preset.

    Args:
      init: "seed" — truncated normal with `mean`, `stddev` for every matrix (the text8
        seed's `tf.truncated_normal(shape, -0.1, 0.1)`, i.e. mean -0.1, stddev 0.1);
        "glorot" — Glorot-uniform kernels, orthogonal recurrent kernel;
        "charrnn" — N(0, 0.01²) kernels, recurrent 0.01·I (the S3 seed);
        "uniform" — U(-1, 1) for every matrix (the binary-addition seed).
    """
    if init == "seed":
        make = lambda: keras.initializers.TruncatedNormal(mean=mean, stddev=stddev)
        return make(), make()
    if init == "glorot":
        return keras.initializers.GlorotUniform(), keras.initializers.Orthogonal()
    if init == "charrnn":
        return (keras.initializers.RandomNormal(stddev=0.01),
                keras.initializers.Identity(gain=0.01))
    if init == "uniform":
        make = lambda: keras.initializers.RandomUniform(-1.0, 1.0)
        return make(), make()
    raise ValueError(f"Received an invalid value for argument `init`, expected one of "
                     f"['seed', 'glorot', 'charrnn', 'uniform'], got {init!r}.")


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected a "
                         f"positive integer, got {value!r}.")
    return value


class _Cell(keras.layers.Layer):
    """Shared constructor/serialisation of the cells, and the Keras RNN cell protocol.

    A cell is called `cell(x (B, I), state (B, S)) -> (output (B, O), new value)`, or,
    as `keras.layers.RNN` calls it, with the state in a list: `cell(x, [state]) ->
    (output, [new state])` (`keras_step` says what the new state is). Subclasses set
    `state_size` and `output_size` (O).
    """

    def __call__(self, inputs, states=None, **kwargs):
        if isinstance(states, (list, tuple)):  # keras.layers.RNN: [state] in, [state] out
            if len(states) != 1:
                raise ValueError(f"{type(self).__name__} has one state tensor, got "
                                 f"{len(states)}.")
            output, new_state = self.keras_step(inputs, states[0], **kwargs)
            return output, [new_state]
        return super().__call__(inputs, states, **kwargs)

    def keras_step(self, x, state, **kwargs):
        """One step of the Keras RNN loop: x (B, I), state (B, S) -> output, new state."""
        return super().__call__(x, state, **kwargs)

    def compute_output_shape(self, input_shape, states_shape=None):
        """(B, I) -> ((B, O) output, (B, S) state)."""
        batch = input_shape[0]
        return (batch, self.output_size), (batch, self.state_size)

    def __init__(self, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)

    def _weight(self, name, shape, initializer):
        return self.add_weight(name=name, shape=shape, initializer=initializer)

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
        }


@keras.saving.register_keras_serializable("tf_rnn")
class Arch1Cell(_Cell):
    """Hidden feedback: a = concat(x·U, h·W) + b; h' = relu(a); logits = h'·V + c.

    U: (A, n), W: (2n, n), b: (2n,), V: (2n, A), c: (A,); the state h has 2n units.
    """

    def __init__(self, alphabet_size, num_nodes, **kwargs):
        super().__init__(**kwargs)
        self.alphabet_size = _positive("alphabet_size", alphabet_size)
        self.num_nodes = _positive("num_nodes", num_nodes)
        self.state_size = 2 * num_nodes
        self.output_size = alphabet_size

    def build(self, input_shape=None):
        A, n = self.alphabet_size, self.num_nodes
        self.U = self._weight("U", (A, n), self.kernel_initializer)
        self.W = self._weight("W", (2 * n, n), self.recurrent_initializer)
        self.b = self._weight("b", (2 * n,), "zeros")
        self.V = self._weight("V", (2 * n, A), self.kernel_initializer)
        self.c = self._weight("c", (A,), "zeros")

    def call(self, x, state):
        """x: (B, A) one-hot; state: (B, 2n) -> logits (B, A), new state (B, 2n)."""
        a = tf.concat([tf.matmul(x, self.U), tf.matmul(state, self.W)], axis=-1) + self.b
        h = tf.nn.relu(a)
        return tf.matmul(h, self.V) + self.c, h

    def get_config(self):
        return {**super().get_config(), "alphabet_size": self.alphabet_size,
                "num_nodes": self.num_nodes}


@keras.saving.register_keras_serializable("tf_rnn")
class Arch2Cell(_Cell):
    """Output feedback: a = concat(x·U, o_prev·W) + b; h = tanh(a); logits = h·V + c.

    U: (A, n), W: (A, n), b: (2n,), V: (2n, A), c: (A,); the state is o_prev (B, A),
    the previous output fed back (a one-hot target/sample, or probabilities).
    """

    def __init__(self, alphabet_size, num_nodes, **kwargs):
        super().__init__(**kwargs)
        self.alphabet_size = _positive("alphabet_size", alphabet_size)
        self.num_nodes = _positive("num_nodes", num_nodes)
        self.state_size = alphabet_size
        self.output_size = alphabet_size

    def build(self, input_shape=None):
        A, n = self.alphabet_size, self.num_nodes
        self.U = self._weight("U", (A, n), self.kernel_initializer)
        self.W = self._weight("W", (A, n), self.recurrent_initializer)
        self.b = self._weight("b", (2 * n,), "zeros")
        self.V = self._weight("V", (2 * n, A), self.kernel_initializer)
        self.c = self._weight("c", (A,), "zeros")

    def call(self, x, o_prev):
        """x: (B, A) one-hot; o_prev: (B, A) -> logits (B, A), hidden h (B, 2n)."""
        a = tf.concat([tf.matmul(x, self.U), tf.matmul(o_prev, self.W)], axis=-1) + self.b
        h = tf.tanh(a)
        return tf.matmul(h, self.V) + self.c, h

    def keras_step(self, x, state, **kwargs):
        """Teacher forcing in `keras.layers.RNN`, as `Arch2Model.call`: the previous
        target, i.e. the current input x, is fed back once the stream has started (a
        non-zero state), zeros before; the new state is x."""
        started = tf.cast(tf.reduce_any(state != 0, axis=-1, keepdims=True), x.dtype)
        logits, _ = super().keras_step(x, x * started, **kwargs)
        return logits, x

    def get_config(self):
        return {**super().get_config(), "alphabet_size": self.alphabet_size,
                "num_nodes": self.num_nodes}


@keras.saving.register_keras_serializable("tf_rnn")
class ElmanCell(_Cell):
    """Elman network: h' = act(x·W_xh + h·W_hh + b_h); logits = h'·W_hy + b_y.

    The hidden state is the "context units" of the Elman network. The output
    non-linearity (sigmoid or softmax) belongs to the loss, so the cell returns logits.
    W_xh: (I, n), W_hh: (n, n), b_h: (n,), W_hy: (n, O), b_y: (O,).
    """

    def __init__(self, input_size, units, output_size, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        if activation not in ("tanh", "sigmoid", "relu"):
            raise ValueError(f"Received an invalid value for argument `activation`, expected "
                             f"one of ['tanh', 'sigmoid', 'relu'], got {activation!r}.")
        self.input_size = _positive("input_size", input_size)
        self.units = _positive("units", units)
        self.output_size = _positive("output_size", output_size)
        self.activation = activation
        self.state_size = units

    def build(self, input_shape=None):
        I, n, O = self.input_size, self.units, self.output_size
        self.W_xh = self._weight("W_xh", (I, n), self.kernel_initializer)
        self.W_hh = self._weight("W_hh", (n, n), self.recurrent_initializer)
        self.b_h = self._weight("b_h", (n,), "zeros")
        self.W_hy = self._weight("W_hy", (n, O), self.kernel_initializer)
        self.b_y = self._weight("b_y", (O,), "zeros")

    def call(self, x, state):
        """x: (B, I); state: (B, n) -> logits (B, O), new state (B, n)."""
        act = {"tanh": tf.tanh, "sigmoid": tf.sigmoid, "relu": tf.nn.relu}[self.activation]
        h = act(tf.matmul(x, self.W_xh) + tf.matmul(state, self.W_hh) + self.b_h)
        return tf.matmul(h, self.W_hy) + self.b_y, h

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "units": self.units,
                "output_size": self.output_size, "activation": self.activation}
