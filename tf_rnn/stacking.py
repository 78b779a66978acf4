"""Stacked layers for the Elman model and Arch 1 with `sum` or `mul` (`num_layers`).

Layer 1 is the model's own cell, unchanged (a one-layer model is exactly the unstacked
one, weights and checkpoint alike); layers 2..L are `StackedLayer`s reading the output
sequence of the layer below, and the output layer (the cell's V, or W_hy) reads the top
layer's. The state is every layer's state side by side, (B, L·n), as IndRNN's. The
`Stacked` mixin gives a `tf_rnn.charmodel.CharModel` subclass the upper layers' window,
step and probe protocol (`tf_rnn.models` lists the protocol).
"""

import keras
import tensorflow as tf

from tf_rnn import kernels
from tf_rnn.charmodel import matmul_last_axis
from tf_rnn.checks import positive_integer


@keras.saving.register_keras_serializable("tf_rnn")
class StackedLayer(keras.layers.Layer):
    """Layer l >= 2 of a stacked Elman or Arch 1 model: its input is the output o (B, n)
    of the layer below, not a character, so it has no readout of its own.

      sum: h' = f(o·U + h·W + b)                (the Elman model's layers: f = tanh)
      mul: h' = f(α⊙(o·U)⊙(h·W) + β₁⊙(h·W) + β₂⊙(o·U) + b)   (Arch 1's, Wu et al. 2016)

    U, W: (n, n); b, α, β₁, β₂: (n,), started as the cells start theirs.
    """

    def __init__(self, units, combine="sum", activation="tanh",
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 **kwargs):
        super().__init__(**kwargs)
        self.units = positive_integer("units", units)
        if combine not in ("sum", "mul"):
            raise ValueError(f"Received an invalid value for argument `combine`, expected "
                             f"'sum' or 'mul', got {combine!r}.")
        self.combine = combine
        self.activation = activation
        kernels.activation_fn(activation)  # an unknown activation fails here, not later
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.state_size = units

    def build(self, input_shape=None):
        n = self.units
        self.U = self.add_weight(name="U", shape=(n, n), initializer=self.kernel_initializer)
        self.W = self.add_weight(name="W", shape=(n, n), initializer=self.recurrent_initializer)
        self.b = self.add_weight(name="b", shape=(n,), initializer="zeros")
        if self.combine == "mul":
            self.alpha = self.add_weight(name="alpha", shape=(n,), initializer="ones")
            self.beta1 = self.add_weight(name="beta1", shape=(n,),
                                         initializer=keras.initializers.Constant(0.5))
            self.beta2 = self.add_weight(name="beta2", shape=(n,),
                                         initializer=keras.initializers.Constant(0.5))
        self.built = True

    def window(self, o, h0):
        """The fast path: o (T, B, n) the sequence below, h0 (B, n) -> h (T, B, n).

        The input projection is one (T·B, n) x (n, n) matmul; the recurrence is the
        shared kernel, gated for mul as layer 1's is."""
        ou = matmul_last_axis(o, self.U)  # (T, B, n)
        if self.combine == "sum":
            p, gate = ou + self.b, None
        else:
            p, gate = self.beta2 * ou + self.b, self.alpha * ou + self.beta1
        return kernels.recurrence(p, h0, self.W, self.activation, gate=gate)

    def hidden(self, o, state):
        """One step, as the cells write it: o (B, n), state (B, n) -> h (B, n)."""
        ou, hw = tf.matmul(o, self.U), tf.matmul(state, self.W)
        if self.combine == "sum":
            a = ou + hw + self.b
        else:
            a = self.alpha * ou * hw + self.beta1 * hw + self.beta2 * ou + self.b
        return kernels.activation_fn(self.activation)(a)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "combine": self.combine,
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(
                    self.recurrent_initializer)}


class Stacked:
    """Layers 2..L above a `CharModel`'s own cell (layer 1), for the Elman model and
    Arch 1 sum/mul: the window's upper layers, the step and the probe protocol.

    The subclass runs layer 1 and its output layer; `_build_upper` makes the
    `StackedLayer`s, one attribute each (a checkpoint tracks a layer held in an
    attribute, not one in a list: `tf_rnn.indrnn`), none when L = 1.
    """

    @classmethod
    def config_kwargs(cls, config):
        return {**super().config_kwargs(config), "num_layers": config.num_layers,
                "residual": config.residual}

    def _build_upper(self, combine, activation):
        kernel, recurrent = self._initializers
        for layer in range(1, self.num_layers):
            upper = StackedLayer(self.num_nodes, combine, activation,
                                 kernel_initializer=kernel, recurrent_initializer=recurrent,
                                 dtype=self.dtype_policy, name=f"layer_{layer}")
            upper.build()
            setattr(self, f"layer_{layer}", upper)

    @property
    def upper_layers(self):
        """Layers 2..L, bottom first ([] for one layer)."""
        return [getattr(self, f"layer_{layer}") for layer in range(1, self.num_layers)]

    @property
    def state_size(self):
        return self.num_layers * self.cell.state_size

    def _run_upper(self, h, carried, dropout_seed):
        """Layer 1's h (T, B, n) and the layers' carried states L x (B, n) -> the top
        output o^L (T, B, n), dropped for the output layer, and the new state (B, L·n).

        Layer l + 1 reads o^l through its own dropout mask (connection l); the output
        layer reads o^L through connection 0 (a one-layer model's one mask)."""
        o, finals = h, [h[-1]]
        for layer, (upper, h0) in enumerate(zip(self.upper_layers, carried[1:]), start=1):
            h = upper.window(self._dropped(o, self._connection_seed(dropout_seed, layer)), h0)
            o = h + o if self.residual else h
            finals.append(h[-1])
        top = self._dropped(o, self._connection_seed(dropout_seed, 0))
        return top, tf.concat(finals, axis=-1)

    # The probe protocol: with L > 1 the hidden layer is the whole new state, every
    # layer's h side by side, as IndRNN's.
    def hidden_step(self, ids, state, probe=None):
        """ids (B,), state (B, L·n) -> the step's new state h (B, L·n). `probe` (B, L·n),
        if given, is added to each layer's h as it is formed, before the layer above reads
        it: its gradient is dL/dh of every layer, the path up the stack included."""
        if self.num_layers == 1:
            h = self.cell.hidden(self.one_hot(ids), state)
            return h if probe is None else h + probe
        carried = tf.split(state, self.num_layers, axis=-1)
        probes = tf.split(probe, self.num_layers, -1) if probe is not None else None
        hs = []
        o = self.one_hot(ids)
        for layer, h_prev in enumerate(carried):
            h = (self.cell.hidden(o, h_prev) if layer == 0
                 else self.upper_layers[layer - 1].hidden(o, h_prev))
            hs.append(h + probes[layer] if probes is not None else h)
            o = hs[-1] + o if self.residual and layer > 0 else hs[-1]
        return tf.concat(hs, axis=-1)

    def readout(self, h):
        """h (B, L·n) -> logits (B, A), read off the top layer's output."""
        return self.cell.readout(self._outputs(tf.split(h, self.num_layers, axis=-1)))

    def step(self, ids, state):
        """ids: (B,) -> logits (B, A), new state (B, L·n)."""
        if self.num_layers == 1:
            return self.cell(self.one_hot(ids), state)
        h = self.hidden_step(ids, state)
        return self.readout(h), h

    def _stacked_matrix(self, first):
        """`first` (layer 1's recurrent matrix) and layers 2..L's W, block-diagonal
        (L·n, L·n): each layer's state feeds back only into itself."""
        if self.num_layers == 1:
            return first
        blocks = [first] + [upper.W for upper in self.upper_layers]
        return tf.linalg.LinearOperatorBlockDiag(
            [tf.linalg.LinearOperatorFullMatrix(b) for b in blocks]).to_dense()

    def _stack_config(self):
        return {"num_layers": self.num_layers, "residual": self.residual}
