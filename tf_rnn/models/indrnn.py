"""The IndRNN character model (Li et al. 2018), one layer or a stack of them.

Layer l: h^l_t = relu(o^{l-1}_t·W_l + b_l + u_l ⊙ h^l_{t-1}), with o^0 the one-hot
input and o^l = h^l (+ o^{l-1} with `residual`, from layer 2 on, where the widths
match) the sequence layer l+1 reads; logits = o^L·V + c.

The fast path (`call`) runs one layer after the other over the whole window: layer 1's
input projection is a row lookup (x·W for a one-hot x), a higher layer's one
(T·B, n) x (n, n) matmul; the recurrence is `tf_rnn.models.kernels.diagonal_recurrence`, with
no matmul per step. `dropout` acts on every non-recurrent connection (the input of
layers 2..L and the output layer's input), never on the recurrence; each connection
draws its own mask, one per stream and window. The stack (the residual rule, dropout
between layers, the state of L layers side by side, the step and the probe protocol)
is `tf_rnn.models.stacking.Stacked`, as for the other models that stack.
"""

import keras
import tensorflow as tf

from tf_rnn.base import model_table
from tf_rnn.models import cells as cells_lib, kernels
from tf_rnn.models.charmodel import CharModel, lookup, matmul_last_axis
from tf_rnn.models.stacking import Stacked


@model_table.implements("indrnn")
@keras.saving.register_keras_serializable("tf_rnn")
class IndRNNModel(Stacked, CharModel):
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
        return {**super().config_kwargs(config),
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
            setattr(self, f"indrnn_{layer}", cell)  # an attribute each: `Stacked` says why
        self.recurrent_max = self.layer_cells[0].recurrent_max
        self.V = self.add_weight(name="V", shape=(num_nodes, alphabet_size),
                                 initializer=kernel)
        self.c = self.add_weight(name="c", shape=(alphabet_size,), initializer="zeros")
        self.built = True

    @property
    def layer_cells(self):
        """The layers' cells, bottom first."""
        return [getattr(self, f"indrnn_{layer}") for layer in range(self.num_layers)]

    stack_layers = layer_cells

    def call(self, inputs, state=None, training=None, dropout_seed=None):
        inputs, state = self._window(inputs, state)
        dropout_seed = self._dropout_seed(training, dropout_seed)
        first, carried = self.layer_cells[0], self._layer_states(state)  # L x (B, n)
        p = lookup(first.W + first.b, tf.transpose(inputs))  # (T, B, n): x·W for a one-hot x
        h = kernels.diagonal_recurrence(p, carried[0], first.u, "relu")  # (T, B, n)
        top, new_state = self._run_upper(h, carried, dropout_seed)
        logits = matmul_last_axis(top, self.V) + self.c  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), new_state

    def _upper_window(self, layer, o, h0):
        cell = self.layer_cells[layer]
        p = matmul_last_axis(o, cell.W) + cell.b  # (T, B, n): one matmul
        return kernels.diagonal_recurrence(p, h0, cell.u, "relu")

    def _read_top(self, o):
        return tf.matmul(o, self.V) + self.c

    def recurrent_matrix(self):
        """diag(u^1, ..., u^L) (L·n, L·n): each unit feeds back only itself."""
        return tf.linalg.diag(tf.concat([cell.u for cell in self.layer_cells], axis=0))

    def get_config(self):
        return {**super().get_config(), **self._stack_config(),
                "recurrent_max": self.recurrent_max}
