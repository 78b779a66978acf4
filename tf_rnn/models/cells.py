"""Recurrent cells: each computes ONE time step and declares its state size.

The sequence loops (and their fast paths) live in `tf_rnn.models`; the cells are the
plain, readable definition of the math, used as the reference the fast paths are
tested against, and by the one-character-at-a-time paths (sampling, export).

Shapes: B batch, A alphabet (or input) size, n = num_nodes.
"""

import keras
import tensorflow as tf

from tf_rnn.base.checks import positive_integer
from tf_rnn.base.config import ACTIVATIONS as ARCH1_ACTIVATIONS, COMBINES, FEEDBACKS
from tf_rnn.models import kernels


def initializers(init, mean=-0.1, stddev=0.1, gain=1.0):
    """Keras initializers for (input/output kernels, recurrent kernel) of a preset.

    Args:
      init: "seed" — truncated normal with `mean`, `stddev` for every matrix (the text8
        seed's `tf.truncated_normal(shape, -0.1, 0.1)`, i.e. mean -0.1, stddev 0.1);
        "glorot" — Glorot-uniform kernels, orthogonal recurrent kernel;
        "irnn" — `gain`·I recurrent kernel, N(0, 0.001²) kernels (Le, Jaitly & Hinton
        2015, "A Simple Way to Initialize Recurrent Networks of Rectified Linear Units");
        "charrnn" — N(0, 0.01²) kernels, recurrent 0.01·I (the S3 seed);
        "uniform" — U(-1, 1) for every matrix (the binary-addition seed).
      gain: the scale of the identity of "irnn".
    """
    if init == "seed":
        make = lambda: keras.initializers.TruncatedNormal(mean=mean, stddev=stddev)
        return make(), make()
    if init == "glorot":
        return keras.initializers.GlorotUniform(), keras.initializers.Orthogonal()
    if init == "irnn":
        return keras.initializers.RandomNormal(stddev=0.001), RecurrentIdentity(gain)
    if init == "charrnn":
        return (keras.initializers.RandomNormal(stddev=0.01),
                keras.initializers.Identity(gain=0.01))
    if init == "uniform":
        make = lambda: keras.initializers.RandomUniform(-1.0, 1.0)
        return make(), make()
    raise ValueError(f"Received an invalid value for argument `init`, expected one of "
                     f"['seed', 'glorot', 'irnn', 'charrnn', 'uniform'], got {init!r}.")


@keras.saving.register_keras_serializable("tf_rnn")
class RecurrentIdentity(keras.initializers.Initializer):
    """gain·I in the last `cols` rows of a (rows, cols) kernel, N(0, 0.001²) above.

    For a square recurrent kernel this is gain·I. Arch 1's concat kernel W (2n, n) maps
    concat(q, r) to the new r: its bottom block, r -> r, is the recurrent one; its top
    block, q -> r, carries the input in and must not start at zero, or r (zero at the
    start of a stream) would stay at relu's kink, where no gradient ever reaches it.
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = gain
        self.seed = seed
        self._above = keras.initializers.RandomNormal(stddev=0.001, seed=seed)

    def __call__(self, shape, dtype=None):
        rows, cols = shape
        if rows < cols:
            raise ValueError(f"RecurrentIdentity needs rows >= cols, got shape {shape}.")
        eye = self.gain * tf.eye(cols, dtype=dtype or "float32")
        if rows == cols:
            return eye
        above = tf.cast(self._above((rows - cols, cols), dtype=dtype), eye.dtype)
        return tf.concat([above, eye], axis=0)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class _Cell(keras.layers.Layer):
    """Shared constructor/serialisation of the cells, and the Keras RNN cell protocol.

    Every cell is called `cell(x (B, I), state (B, S)) -> (logits (B, O), new state
    (B, S))`, and, as `keras.layers.RNN` calls it, with the state in a one-element list:
    `cell(x, [state]) -> (logits, [new state])`. A subclass writes its math as
    `hidden(x, state) -> h`, the step's hidden layer, and `readout(h) -> logits`; the new
    state is h unless its `step` says otherwise (Arch 2 feeds back an output). Subclasses
    set `state_size` and `output_size` (O).
    """

    def call(self, inputs, states):
        if isinstance(states, (list, tuple)):  # keras.layers.RNN: [state] in, [state] out
            if len(states) != 1:
                raise ValueError(f"{type(self).__name__} has one state tensor, got "
                                 f"{len(states)}.")
            logits, new_state = self.step(inputs, states[0])
            return logits, [new_state]
        return self.step(inputs, states)

    def step(self, x, state):
        """One step: x (B, I), state (B, S) -> logits (B, O), new state h (B, S)."""
        h = self.hidden(x, state)
        return self.readout(h), h

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


def stream_started(state, dtype):
    """(B, 1): 1 where a stream has started (its state is not all zeros), else 0."""
    return tf.cast(tf.reduce_any(state != 0, axis=-1, keepdims=True), dtype)


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected one "
                         f"of {list(choices)}, got {value!r}.")
    return value


def integration_terms(xu, b, gates=None):
    """x·U's two parts in a = p + g ⊙ (h·W), the pre-activation of Arch 1's sum and mul
    (and of their stacked layers): xu (..., n) -> p, g (..., n).

    sum (gates None): a = x·U + h·W + b, so p = x·U + b and g = 1 (returned as None).
    mul (gates = (α, β₁, β₂); multiplicative integration, Wu et al. 2016):
      a = α⊙(x·U)⊙(h·W) + β₁⊙(h·W) + β₂⊙(x·U) + b, so p = β₂⊙(x·U) + b, g = α⊙(x·U) + β₁.
    p and g depend on the input alone: the fast path computes them for a whole window
    (for a one-hot x, as rows of per-character tables)."""
    if gates is None:
        return xu + b, None
    alpha, beta1, beta2 = gates
    return beta2 * xu + b, alpha * xu + beta1


def add_gates(layer, n):
    """Gives `layer` mul's (n,) weights: α started at 1, β₁ and β₂ at 0.5 (Wu et al.)."""
    layer.alpha = layer.add_weight(name="alpha", shape=(n,), initializer="ones")
    for name in ("beta1", "beta2"):
        setattr(layer, name, layer.add_weight(name=name, shape=(n,),
                                              initializer=keras.initializers.Constant(0.5)))


def integrate(xu, hw, b, gates=None):
    """The pre-activation a = p + g ⊙ (h·W) of `integration_terms`, for one step."""
    p, g = integration_terms(xu, b, gates)
    return p + hw if g is None else p + g * hw


@keras.saving.register_keras_serializable("tf_rnn")
class Arch1Cell(_Cell):
    """Hidden feedback: x·U and h·W combined, then h' = f(a); logits = h'·V + c.

    `combine` says how the input and the state meet (the seed tried all three):
      concat: a = concat(x·U, h·W) + b. U (A, n), W (2n, n), b (2n,), V (2n, A);
        the state has 2n units (the seed's published model).
      sum: a = x·U + h·W + b. U (A, n), W (n, n), b (n,), V (n, A); state n.
      mul: multiplicative integration (Wu et al. 2016),
        a = α⊙(x·U)⊙(h·W) + β₁⊙(h·W) + β₂⊙(x·U) + b, with learned (n,) gates
        α (initialised to 1) and β₁, β₂ (initialised to 0.5); otherwise as sum.
    `activation` f is relu (the seed's) or tanh.
    """

    def __init__(self, alphabet_size, num_nodes, combine="concat", activation="relu",
                 **kwargs):
        super().__init__(**kwargs)
        self.alphabet_size = positive_integer("alphabet_size", alphabet_size)
        self.num_nodes = positive_integer("num_nodes", num_nodes)
        self.combine = _choice("combine", combine, COMBINES)
        self.activation = _choice("activation", activation, ARCH1_ACTIVATIONS)
        self.state_size = (2 if combine == "concat" else 1) * num_nodes
        self.output_size = alphabet_size

    def build(self, input_shape=None):
        A, n, S = self.alphabet_size, self.num_nodes, self.state_size
        self.U = self._weight("U", (A, n), self.kernel_initializer)
        self.W = self._weight("W", (S, n), self.recurrent_initializer)
        self.b = self._weight("b", (S,), "zeros")
        self.V = self._weight("V", (S, A), self.kernel_initializer)
        self.c = self._weight("c", (A,), "zeros")
        if self.combine == "mul":
            add_gates(self, n)

    def hidden(self, x, state):
        """x: (B, A) one-hot; state: (B, S) -> the new hidden layer h (B, S), the state."""
        xu, hw = tf.matmul(x, self.U), tf.matmul(state, self.W)
        if self.combine == "concat":
            a = tf.concat([xu, hw], axis=-1) + self.b
        else:
            a = integrate(xu, hw, self.b, self.gates)
        return kernels.activation_fn(self.activation)(a)

    @property
    def gates(self):
        """mul: (α, β₁, β₂) of `integration_terms`; otherwise None."""
        return (self.alpha, self.beta1, self.beta2) if self.combine == "mul" else None

    def readout(self, h):
        """h: (B, S) -> logits (B, A)."""
        return tf.matmul(h, self.V) + self.c

    def get_config(self):
        return {**super().get_config(), "alphabet_size": self.alphabet_size,
                "num_nodes": self.num_nodes, "combine": self.combine,
                "activation": self.activation}


@keras.saving.register_keras_serializable("tf_rnn")
class Arch2Cell(_Cell):
    """Output feedback: a = concat(x·U, o_prev·W) + b; h = tanh(a); logits = h·V + c.

    U: (A, n), W: (A, n), b: (2n,), V: (2n, A), c: (A,); the state (B, A) is zeros at
    a stream's start, then what `feedback` says is fed back:
      "sample": the previous output as a one-hot, which is the current input x (under
        teacher forcing the previous target, when generating the sampled character),
        so o_prev = x once the stream has started; the new state is x. In
        `keras.layers.RNN` this is the teacher-forced window of `Arch2Model.call`.
      "probs": o_prev = the state, the previous step's softmax; the new state is this
        step's softmax.
    """

    def __init__(self, alphabet_size, num_nodes, feedback="sample", **kwargs):
        super().__init__(**kwargs)
        self.alphabet_size = positive_integer("alphabet_size", alphabet_size)
        self.num_nodes = positive_integer("num_nodes", num_nodes)
        self.feedback = _choice("feedback", feedback, FEEDBACKS)
        self.state_size = alphabet_size
        self.output_size = alphabet_size

    def build(self, input_shape=None):
        A, n = self.alphabet_size, self.num_nodes
        self.U = self._weight("U", (A, n), self.kernel_initializer)
        self.W = self._weight("W", (A, n), self.recurrent_initializer)
        self.b = self._weight("b", (2 * n,), "zeros")
        self.V = self._weight("V", (2 * n, A), self.kernel_initializer)
        self.c = self._weight("c", (A,), "zeros")

    def hidden(self, x, o_prev):
        """x: (B, A) one-hot; o_prev: (B, A) the output fed back -> hidden h (B, 2n)."""
        a = tf.concat([tf.matmul(x, self.U), tf.matmul(o_prev, self.W)], axis=-1) + self.b
        return tf.tanh(a)

    def readout(self, h):
        """h: (B, 2n) -> logits (B, A)."""
        return tf.matmul(h, self.V) + self.c

    def step(self, x, state):
        """x: (B, A) one-hot; state: (B, A) -> logits (B, A), new state (B, A)."""
        if self.feedback == "probs":
            logits = self.readout(self.hidden(x, state))
            return logits, tf.nn.softmax(logits)
        logits = self.readout(self.hidden(x, x * stream_started(state, x.dtype)))
        return logits, x

    def get_config(self):
        return {**super().get_config(), "alphabet_size": self.alphabet_size,
                "num_nodes": self.num_nodes, "feedback": self.feedback}


@keras.saving.register_keras_serializable("tf_rnn")
class ElmanCell(_Cell):
    """Elman network: h' = act(x·W_xh + h·W_hh + b_h); logits = h'·W_hy + b_y.

    The hidden state is the "context units" of the Elman network. The output
    non-linearity (sigmoid or softmax) belongs to the loss, so the cell returns logits.
    W_xh: (I, n), W_hh: (n, n), b_h: (n,), W_hy: (n, O), b_y: (O,).
    """

    def __init__(self, input_size, units, output_size, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.input_size = positive_integer("input_size", input_size)
        self.units = positive_integer("units", units)
        self.output_size = positive_integer("output_size", output_size)
        self.activation = _choice("activation", activation, kernels.ACTIVATIONS)
        self.state_size = units

    def build(self, input_shape=None):
        I, n, O = self.input_size, self.units, self.output_size
        self.W_xh = self._weight("W_xh", (I, n), self.kernel_initializer)
        self.W_hh = self._weight("W_hh", (n, n), self.recurrent_initializer)
        self.b_h = self._weight("b_h", (n,), "zeros")
        self.W_hy = self._weight("W_hy", (n, O), self.kernel_initializer)
        self.b_y = self._weight("b_y", (O,), "zeros")

    def hidden(self, x, state):
        """x: (B, I); state: (B, n) -> the new hidden layer h (B, n), the state."""
        a = tf.matmul(x, self.W_xh) + tf.matmul(state, self.W_hh) + self.b_h
        return kernels.activation_fn(self.activation)(a)

    def readout(self, h):
        """h: (B, n) -> logits (B, O)."""
        return tf.matmul(h, self.W_hy) + self.b_y

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "units": self.units,
                "output_size": self.output_size, "activation": self.activation}


@keras.saving.register_keras_serializable("tf_rnn")
class MaxAbs(keras.constraints.Constraint):
    """Clips every element to [-max_value, max_value] (IndRNN's bound on u).

    Keras's optimizers apply a variable's constraint after each update
    (`optimizer.apply`), so the bound holds after every training step.
    """

    def __init__(self, max_value):
        self.max_value = float(max_value)

    def __call__(self, w):
        return keras.ops.clip(w, -self.max_value, self.max_value)

    def get_config(self):
        return {"max_value": self.max_value}


@keras.saving.register_keras_serializable("tf_rnn")
class IndRNNCell(_Cell):
    """One IndRNN layer (Li et al. 2018): h' = relu(x·W + b + u ⊙ h); its output is h'.

    Each unit feeds back only itself, through its own weight u_i. W: (I, n), b: (n,),
    u: (n,), initialised U(0, recurrent_max) and kept in [-recurrent_max,
    recurrent_max] after every update (`MaxAbs`): with |u_i| <= γ^(1/T) the gradient
    through T steps of a unit that stays active neither vanishes nor grows past γ.
    A stacked model reads the output layer off the last layer (`tf_rnn.models.indrnn`).
    """

    def __init__(self, input_size, units, recurrent_max=2.0 ** (1 / 40), **kwargs):
        super().__init__(**kwargs)
        self.input_size = positive_integer("input_size", input_size)
        self.units = positive_integer("units", units)
        if isinstance(recurrent_max, bool) or not isinstance(recurrent_max, (int, float)) \
                or not 0 < recurrent_max < float("inf"):
            raise ValueError(f"Received an invalid value for argument `recurrent_max`, "
                             f"expected a positive number, got {recurrent_max!r}.")
        self.recurrent_max = float(recurrent_max)
        self.state_size = self.output_size = units

    def build(self, input_shape=None):
        I, n = self.input_size, self.units
        self.W = self._weight("W", (I, n), self.kernel_initializer)
        self.b = self._weight("b", (n,), "zeros")
        self.u = self.add_weight(
            name="u", shape=(n,), constraint=MaxAbs(self.recurrent_max),
            initializer=keras.initializers.RandomUniform(0.0, self.recurrent_max))

    def hidden(self, x, state):
        """x: (B, I); state: (B, n) -> the new state h (B, n)."""
        return tf.nn.relu(tf.matmul(x, self.W) + self.b + self.u * state)

    def readout(self, h):
        """The layer's output is its state: h (B, n) -> h."""
        return h

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "units": self.units,
                "recurrent_max": self.recurrent_max}
