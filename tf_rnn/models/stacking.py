"""Stacked layers (`num_layers`, `residual`), written once for every model that stacks.

`Stacked` is the stack itself: the residual rule, the dropout between layers, the
window's upper layers, the state of L layers side by side, the step and the probe
protocol (`tf_rnn.models` lists it). IndRNN (`tf_rnn.models.indrnn`) stacks its own cells;
the Elman model and Arch 1 with `sum` or `mul` stack with `StackedOnCell`: layer 1 is
the model's own cell, unchanged (a one-layer model is exactly the unstacked one,
weights and checkpoint alike), layers 2..L are `StackedLayer`s, and the output layer
(the cell's V, or W_hy) reads the top layer's output.
"""

import keras
import tensorflow as tf

from tf_rnn.base.checks import positive_integer
from tf_rnn.models import kernels
from tf_rnn.models.cells import add_gates, integrate, integration_terms
from tf_rnn.models.charmodel import matmul_last_axis


@keras.saving.register_keras_serializable("tf_rnn")
class StackedLayer(keras.layers.Layer):
    """Layer l >= 2 of a stacked Elman or Arch 1 model: its input is the output o (B, n)
    of the layer below, not a character, so it has no readout of its own.

      h' = f(a), a the pre-activation of `tf_rnn.models.cells.integration_terms` with o in x's
      place: sum a = o·U + h·W + b (the Elman model's layers: f = tanh), mul Arch 1's
      multiplicative integration.

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
            add_gates(self, n)
        self.built = True

    def window(self, o, h0):
        """The fast path: o (T, B, n) the sequence below, h0 (B, n) -> h (T, B, n).

        The input projection is one (T·B, n) x (n, n) matmul; the recurrence is the
        shared kernel, gated for mul as layer 1's is."""
        p, gate = integration_terms(matmul_last_axis(o, self.U), self.b, self.gates)
        return kernels.recurrence(p, h0, self.W, self.activation, gate=gate)

    def hidden(self, o, state):
        """One step, as the cells write it: o (B, n), state (B, n) -> h (B, n)."""
        a = integrate(tf.matmul(o, self.U), tf.matmul(state, self.W), self.b, self.gates)
        return kernels.activation_fn(self.activation)(a)

    @property
    def gates(self):
        """mul: (α, β₁, β₂) of `tf_rnn.models.cells.integration_terms`; sum: None."""
        return (self.alpha, self.beta1, self.beta2) if self.combine == "mul" else None

    def get_config(self):
        return {**super().get_config(), "units": self.units, "combine": self.combine,
                "activation": self.activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(
                    self.recurrent_initializer)}


class Stacked:
    """One way to stack L >= 1 equal layers of a `CharModel` (the Elman model, Arch 1
    sum/mul, IndRNN): the residual rule, the dropout between layers, the window's upper
    layers, the step and the probe protocol.

    Layer l reads o^{l-1}, the output sequence of the layer below (o^0 the one-hot
    input): h^l = its recurrence; o^l = h^l, + o^{l-1} with `residual` from layer 2 on
    (where the widths match). The output layer reads o^L. Layer l + 1 reads o^l through
    a dropout mask of its own (connection l); the output layer reads o^L through
    connection 0 (a one-layer model's one mask). The state is every layer's state side
    by side, (B, L·n): h^1 in [0, n), h^2 in [n, 2n), ...; a one-layer model's state is
    h itself.

    The model says what its layers are and how they run:
      stack_layers            its L layers, bottom first, each with the one-step
                              `hidden(o, h) -> h'` (cells, or `StackedLayer`)
      _upper_window(l, o, h0) layer l >= 1 (0-based) over the window: o (T, B, n) the
                              sequence below, h0 (B, n) -> h (T, B, n)
      _read_top(o)            the output layer: o^L (B, n) -> logits (B, A)
    and runs layer 1 over the window itself (its fast path reads characters, not a
    sequence), then `_run_upper`. Each layer is held in an attribute of its own: a
    checkpoint (tf.train.Checkpoint) tracks a layer in an attribute, not one in a list
    (measured: a list's weights were missing from the saved checkpoint).
    """

    @classmethod
    def config_kwargs(cls, config):
        return {**super().config_kwargs(config), "num_layers": config.num_layers,
                "residual": config.residual}

    def _init_stack(self, num_layers, residual):
        """Sets `num_layers` (L >= 1) and `residual` (bool), validated."""
        self.num_layers = positive_integer("num_layers", num_layers)
        if not isinstance(residual, bool):
            raise ValueError(f"Received an invalid value for argument `residual`, expected "
                             f"True or False, got {residual!r}.")
        self.residual = residual

    def _stack_config(self):
        return {"num_layers": self.num_layers, "residual": self.residual}

    @property
    def state_size(self):
        return self.num_layers * self.stack_layers[0].state_size

    def _next_input(self, layer, h, o):
        """The residual rule: layer `layer`'s (0-based) output o^l from its h and its input
        o^{l-1}: h + o^{l-1} with `residual` from the second layer on, else h."""
        return h + o if self.residual and layer > 0 else h

    def _outputs(self, hs):
        """The layers' new states [h^1..h^L] -> the top layer's output o^L (..., n)."""
        o = None
        for layer, h in enumerate(hs):
            o = self._next_input(layer, h, o)
        return o

    def _connection_seed(self, dropout_seed, connection):
        """Connection 0 (the output layer's input) and l (layer l+1's input) draw masks
        of their own from one step's (2,) seed: the run seed's slot offset by l. A
        one-layer model's only connection, 0, draws from the step's seed itself."""
        if dropout_seed is None:
            return None
        return dropout_seed + tf.constant([connection, 0], dropout_seed.dtype)

    def _layer_states(self, state):
        """(B, L·n) -> the layers' states, L x (B, n)."""
        return [state] if self.num_layers == 1 else tf.split(state, self.num_layers, -1)

    def _joined(self, hs):
        """The layers' states L x (B, n) -> (B, L·n)."""
        return hs[0] if len(hs) == 1 else tf.concat(hs, axis=-1)

    def _run_upper(self, h, carried, dropout_seed):
        """Layer 1's h (T, B, n) and the layers' carried states L x (B, n) -> the top
        output o^L (T, B, n), dropped for the output layer, and the new state (B, L·n)."""
        o, finals = h, [h[-1]]
        for layer in range(1, self.num_layers):
            below = self._dropped(o, self._connection_seed(dropout_seed, layer))
            h = self._upper_window(layer, below, carried[layer])
            o = self._next_input(layer, h, o)
            finals.append(h[-1])
        top = self._dropped(o, self._connection_seed(dropout_seed, 0))
        return top, tf.concat(finals, axis=-1)

    # The probe protocol: with L > 1 the hidden layer is the whole new state, every
    # layer's h side by side.
    def hidden_step(self, ids, state, probe=None):
        """ids (B,), state (B, L·n) -> the step's new state h (B, L·n). `probe` (B, L·n),
        if given, is added to each layer's h as it is formed, before the layer above reads
        it: its gradient is dL/dh of every layer, the path up the stack included."""
        probes = self._layer_states(probe) if probe is not None else None
        o, hs = self.one_hot(ids), []
        for layer, (cell, h_prev) in enumerate(zip(self.stack_layers,
                                                   self._layer_states(state))):
            h = cell.hidden(o, h_prev)
            h = h + probes[layer] if probes is not None else h
            o = self._next_input(layer, h, o)
            hs.append(h)
        return self._joined(hs)

    def readout(self, h):
        """h (B, L·n) -> logits (B, A), read off the top layer's output."""
        return self._read_top(self._outputs(self._layer_states(h)))

    def step(self, ids, state):
        """ids: (B,) -> logits (B, A), new state (B, L·n)."""
        h = self.hidden_step(ids, state)
        return self.readout(h), h


class StackedOnCell(Stacked):
    """The stack of the Elman model and Arch 1 sum/mul: the model's cell (`self.cell`) is
    layer 1 and its readout the output layer; `_build_upper` makes layers 2..L, one
    `StackedLayer` attribute each (`layer_1`, ...), none when L = 1."""

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
    def stack_layers(self):
        return [self.cell, *self.upper_layers]

    def _upper_window(self, layer, o, h0):
        return self.upper_layers[layer - 1].window(o, h0)

    def _read_top(self, o):
        return self.cell.readout(o)

    def _stacked_matrix(self, first):
        """`first` (layer 1's recurrent matrix) and layers 2..L's W, block-diagonal
        (L·n, L·n): each layer's state feeds back only into itself."""
        if self.num_layers == 1:
            return first
        blocks = [first] + [upper.W for upper in self.upper_layers]
        return tf.linalg.LinearOperatorBlockDiag(
            [tf.linalg.LinearOperatorFullMatrix(b) for b in blocks]).to_dense()
