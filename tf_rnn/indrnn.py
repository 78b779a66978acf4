"""The IndRNN character model (Li et al. 2018), one layer or a stack of them.

Layer l: h^l_t = relu(o^{l-1}_t·W_l + b_l + u_l ⊙ h^l_{t-1}), with o^0 the one-hot
input and o^l = h^l (+ o^{l-1} with `residual`, from layer 2 on, where the widths
match) the sequence layer l+1 reads; logits = o^L·V + c.

The fast path (`call`) runs one layer after the other over the whole window: layer 1's
input projection is a row lookup (x·W for a one-hot x), a higher layer's one
(T·B, n) x (n, n) matmul; the recurrence is `tf_rnn.kernels.diagonal_recurrence`, with
no matmul per step. `dropout` acts on every non-recurrent connection (the input of
layers 2..L and the output layer's input), never on the recurrence; each connection
draws its own mask, one per stream and window.

The state is every layer's state side by side, (B, L·n): h^1 in [0, n), h^2 in
[n, 2n), ...; a one-layer model's state is h itself, as in the other models.
"""

import keras
import tensorflow as tf

from tf_rnn import cells as cells_lib
from tf_rnn import kernels
from tf_rnn import model_table
from tf_rnn.charmodel import CharModel, lookup, matmul_last_axis


@model_table.implements("indrnn")
@keras.saving.register_keras_serializable("tf_rnn")
class IndRNNModel(CharModel):
    """Stacked IndRNN layers (`cells_lib.IndRNNCell`) and a linear output layer.

    Args:
      alphabet_size: A.
      num_nodes: n, the units of every layer.
      num_layers: L >= 1.
      residual: add each layer's input sequence to its output from layer 2 on.
      recurrent_max: the bound on |u| of every layer (`build_model` passes
        indrnn_gamma^(1/num_unrollings)); u starts U(0, recurrent_max).
      **kwargs: `CharModel`'s (init, dropout, seed, dtype, ...); `init` chooses the
        input and output kernels (u has its own start).
    """

    activation = "relu"
    recurrent_units = None  # all of h feeds back

    @classmethod
    def config_kwargs(cls, config):
        # |u| <= γ^(1/T): a unit's gradient over a training window of T steps grows by
        # at most γ (Li et al. 2018).
        return {"num_layers": config.num_layers, "residual": config.residual,
                "recurrent_max": config.indrnn_gamma ** (1.0 / config.num_unrollings)}

    def __init__(self, alphabet_size, num_nodes, num_layers=1, residual=False,
                 recurrent_max=2.0 ** (1 / 40), **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        self._init_stack(num_layers, residual)
        kernel, _ = self._initializers
        for layer in range(self.num_layers):
            cell = cells_lib.IndRNNCell(
                alphabet_size if layer == 0 else num_nodes, num_nodes, recurrent_max,
                kernel_initializer=kernel, dtype=self.dtype_policy, name=f"indrnn_{layer}")
            cell.build()
            # One attribute per layer: a checkpoint (tf.train.Checkpoint) tracks a layer
            # held in an attribute, not one in a Python list (measured: a list's weights
            # were missing from the saved checkpoint).
            setattr(self, f"indrnn_{layer}", cell)
        self.recurrent_max = self.layer_cells[0].recurrent_max
        self.V = self.add_weight(name="V", shape=(num_nodes, alphabet_size),
                                 initializer=kernel)
        self.c = self.add_weight(name="c", shape=(alphabet_size,), initializer="zeros")
        self.built = True

    @property
    def layer_cells(self):
        """The layers' cells, bottom first."""
        return [getattr(self, f"indrnn_{layer}") for layer in range(self.num_layers)]

    @property
    def state_size(self):
        return self.num_layers * self.num_nodes

    def call(self, inputs, state=None, training=None, dropout_seed=None):
        inputs, state = self._window(inputs, state)
        dropout_seed = self._dropout_seed(training, dropout_seed)
        ids = tf.transpose(inputs)  # (T, B)
        carried = tf.split(state, self.num_layers, axis=-1)  # L x (B, n)
        finals = []
        for layer, (cell, h0) in enumerate(zip(self.layer_cells, carried)):
            if layer == 0:
                p = lookup(cell.W + cell.b, ids)  # (T, B, n): x·W for a one-hot x
            else:
                below = self._dropped(o, self._connection_seed(dropout_seed, layer))
                p = matmul_last_axis(below, cell.W) + cell.b  # (T, B, n): one matmul
            h = kernels.diagonal_recurrence(p, h0, cell.u, "relu")  # (T, B, n)
            o = h + o if self.residual and layer > 0 else h
            finals.append(h[-1])
        top = self._dropped(o, self._connection_seed(dropout_seed, 0))
        logits = matmul_last_axis(top, self.V) + self.c  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), tf.concat(finals, axis=-1)

    # The probe protocol (`tf_rnn.models`): the hidden layer is the whole new state,
    # every layer's h side by side.
    def hidden_step(self, ids, state, probe=None):
        """ids (B,), state (B, L·n) -> the step's new state h (B, L·n). `probe` (B, L·n),
        if given, is added to each layer's h as it is formed, before the layer above reads
        it: its gradient is dL/dh of every layer, the path up the stack included."""
        o, hs = self.one_hot(ids), []
        probes = tf.split(probe, self.num_layers, -1) if probe is not None else None
        for layer, (cell, h_prev) in enumerate(
                zip(self.layer_cells, tf.split(state, self.num_layers, -1))):
            h = cell.hidden(o, h_prev)
            h = h + probes[layer] if probes is not None else h
            o = h + o if self.residual and hs else h
            hs.append(h)
        return tf.concat(hs, axis=-1)

    def readout(self, h):
        """h (B, L·n) -> logits (B, A), read off the top layer's output."""
        return tf.matmul(self._outputs(tf.split(h, self.num_layers, -1)), self.V) + self.c

    def step(self, ids, state):
        """ids: (B,) -> logits (B, A), new state (B, L·n)."""
        h = self.hidden_step(ids, state)
        return self.readout(h), h

    def recurrent_matrix(self):
        """diag(u^1, ..., u^L) (L·n, L·n): each unit feeds back only itself."""
        return tf.linalg.diag(tf.concat([cell.u for cell in self.layer_cells], axis=0))

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers,
                "residual": self.residual, "recurrent_max": self.recurrent_max}
