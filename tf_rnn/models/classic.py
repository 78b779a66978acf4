"""The seeds' character models: Arch 1 (hidden feedback), Arch 2 (output feedback,
teacher-forced) and the Elman char-RNN, each a cell of `tf_rnn.models.cells` and its fast
path: what depends on the input alone computed for the whole window, the recurrence by
`tf_rnn.models.kernels`.
"""

import keras
import tensorflow as tf

from tf_rnn.base import model_table
from tf_rnn.models import cells as cells_lib, kernels
from tf_rnn.models.charmodel import CharModel, lookup, matmul_last_axis
from tf_rnn.models.stacking import StackedOnCell


@model_table.implements("arch1")
@keras.saving.register_keras_serializable("tf_rnn")
class Arch1Model(StackedOnCell, CharModel):
    """Arch 1 (hidden feedback), each `combine` with its restructured unroll.

    concat: f(concat(x·U, h·W) + b) = concat(q, r) with q = f(x·U + b[:n]) depending
    on the input alone, and r = f(q_prev·W[:n] + r_prev·W[n:] + b[n:]): only r is
    recurrent, so the sequential work per step is one (B, n) x (n, n) matmul.
    sum and mul: a = p_t + g_t ⊙ (h·W) (`cells_lib.integration_terms`), p_t and g_t
    rows of per-character tables; the recurrence is the one kernel, gated or not.
    """

    @classmethod
    def config_kwargs(cls, config):
        return {**super().config_kwargs(config), "combine": config.combine,
                "activation": config.activation}

    def __init__(self, alphabet_size, num_nodes, combine="concat", activation="relu",
                 num_layers=1, residual=False, **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        self._init_stack(num_layers, residual)
        if combine == "concat" and self.num_layers > 1:
            raise ValueError(f"Received num_layers={num_layers!r} with combine='concat', "
                             f"which does not stack: {model_table.CONCAT_DOES_NOT_STACK}; "
                             f"use combine 'sum' or 'mul'.")
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.Arch1Cell(
            alphabet_size, num_nodes, combine=combine, activation=activation,
            kernel_initializer=kernel, recurrent_initializer=recurrent,
            dtype=self.dtype_policy))
        self.combine, self.activation = combine, activation
        self._build_upper(combine, activation)

    def call(self, inputs, state=None, training=None, dropout_seed=None):
        inputs, state = self._window(inputs, state)
        dropout_seed = self._dropout_seed(training, dropout_seed)
        ids = tf.transpose(inputs)  # (T, B)
        if self.combine == "concat":
            return self._call_concat(ids, state, dropout_seed)
        return self._call_integrated(ids, state, dropout_seed)

    def _call_concat(self, ids, state, dropout_seed=None):
        cell, n, f = self.cell, self.num_nodes, kernels.activation_fn(self.activation)
        # q depends on the current character alone, so q and both of its products
        # (its share of the next step's pre-activation, its share of the logits) are
        # rows of per-character tables: A rows to compute instead of B*T, and a row
        # gather instead of a one-hot matmul (docs/performance.md: what helped).
        q_table = f(cell.U + cell.b[:n])  # (A, n)
        p_table = tf.matmul(q_table, cell.W[:n]) + cell.b[n:]  # (A, n)
        logit_table = tf.matmul(q_table, cell.V[:n]) + cell.c  # (A, A)
        p_first = tf.matmul(state[:, :n], cell.W[:n]) + cell.b[n:]  # (B, n): carried q
        p = tf.concat([p_first[None], lookup(p_table, ids[:-1])], axis=0)  # (T, B, n)
        r = kernels.recurrence(p, state[:, n:], cell.W[n:], self.activation)  # (T, B, n)
        # Dropout (training only) reaches the recurrent half r: q's share is a table row.
        logits = (lookup(logit_table, ids)
                  + matmul_last_axis(self._dropped(r, dropout_seed), cell.V[n:]))  # (T, B, A)
        new_state = tf.concat([lookup(q_table, ids[-1]), r[-1]], axis=-1)  # (B, 2n)
        return tf.transpose(logits, [1, 0, 2]), new_state

    def _call_integrated(self, ids, state, dropout_seed=None):
        cell = self.cell
        # p_t and g_t are rows of per-character tables (x·U for a one-hot x is a row of
        # U); mul's two share one (A, 2n) table and one gather.
        p, gate = cells_lib.integration_terms(cell.U, cell.b, cell.gates)  # (A, n) each
        if gate is None:
            p = lookup(p, ids)  # (T, B, n)
        else:
            p, gate = tf.split(lookup(tf.concat([p, gate], -1), ids), 2, axis=-1)
        carried = self._layer_states(state)  # L x (B, n)
        h = kernels.recurrence(p, carried[0], cell.W, self.activation, gate=gate)  # (T, B, n)
        top, new_state = self._run_upper(h, carried, dropout_seed)
        logits = matmul_last_axis(top, cell.V) + cell.c  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), new_state

    @property
    def recurrent_units(self):
        """concat: r = h[n:2n), the half of h that feeds back; sum, mul: all of h."""
        return slice(self.num_nodes, 2 * self.num_nodes) if self.combine == "concat" else None

    def recurrent_matrix(self):
        """concat: W[n:] (n, n), the r -> r block; sum, mul: W (n, n), with L > 1 every
        layer's W block-diagonal (L·n, L·n)."""
        if self.combine == "concat":
            return self.cell.W[self.num_nodes:]
        return self._stacked_matrix(self.cell.W)

    def get_config(self):
        return {**super().get_config(), "combine": self.combine,
                "activation": self.activation, **self._stack_config()}


@model_table.implements("arch2")
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

    @classmethod
    def config_kwargs(cls, config):
        return {"feedback": config.feedback}

    def __init__(self, alphabet_size, num_nodes, feedback="sample", **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        if self.dropout:
            raise ValueError("Arch 2's teacher-forced window has no recurrent hidden layer to "
                             "drop from: dropout is for arch1, elman and indrnn.")
        if feedback not in ("sample", "probs"):
            raise ValueError(f"Received an invalid value for argument `feedback`, expected "
                             f"'sample' or 'probs', got {feedback!r}.")
        self.feedback = feedback
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.Arch2Cell(
            alphabet_size, num_nodes, feedback=feedback, kernel_initializer=kernel,
            recurrent_initializer=recurrent, dtype=self.dtype_policy))

    activation = "tanh"

    def call(self, inputs, state=None):
        inputs, state = self._window(inputs, state)
        cell, A = self.cell, self.alphabet_size
        # Teacher-forced logits depend on (x_t, whether o_prev is one_hot(x_t) or zeros)
        # alone, so they are rows of a (2A, A) table: rows [0, A) fed back, [A, 2A) at
        # a stream's start. A gather replaces the (B*T)-row matmuls.
        fed = tf.concat([cell.U, cell.W], axis=-1) + cell.b  # (A, 2n): o_prev = one_hot(x)
        unfed = tf.concat([cell.U, tf.zeros_like(cell.W)], axis=-1) + cell.b  # o_prev = 0
        table = tf.matmul(tf.tanh(tf.concat([fed, unfed], 0)), cell.V) + cell.c  # (2A, A)
        fresh = tf.cast(tf.reduce_all(state == 0, axis=-1, keepdims=True), inputs.dtype)
        rows = tf.concat([inputs[:, :1] + A * fresh, inputs[:, 1:]], axis=1)  # (B, T)
        return lookup(table, rows), self.one_hot(inputs[:, -1])  # (B, T, A), (B, A)

    # The probe protocol, of the teacher-forced window `call` trains: the output fed
    # back at step t is one_hot(x_t) (the previous target), zeros at a stream's start;
    # the hidden layer is not carried at all.
    def hidden_step(self, ids, state):
        x = self.one_hot(ids)
        return self.cell.hidden(x, x * cells_lib.stream_started(state, x.dtype))

    def carry(self, h, ids):
        return self.one_hot(ids)

    @property
    def hidden_size(self):
        return 2 * self.num_nodes

    def recurrent_matrix(self):
        """W (A, n), the fed-back output's matrix (not square)."""
        return self.cell.W

    def get_config(self):
        return {**super().get_config(), "feedback": self.feedback}


@model_table.implements("elman")
@keras.saving.register_keras_serializable("tf_rnn")
class ElmanModel(StackedOnCell, CharModel):
    """The S3 char-RNN: h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h); y_t = h_t W_hy + b_y.

    With `num_layers` L > 1, layers 2..L are tanh `StackedLayer`s (sum) and W_hy reads
    the top layer's output; `residual` adds each layer's input to its output."""

    def __init__(self, alphabet_size, num_nodes, num_layers=1, residual=False, **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        self._init_stack(num_layers, residual)
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.ElmanCell(
            alphabet_size, num_nodes, alphabet_size, activation="tanh",
            kernel_initializer=kernel, recurrent_initializer=recurrent,
            dtype=self.dtype_policy))
        self._build_upper("sum", "tanh")

    activation = "tanh"

    def recurrent_matrix(self):
        """W_hh (n, n); with L > 1 every layer's W block-diagonal (L·n, L·n)."""
        return self._stacked_matrix(self.cell.W_hh)

    def get_config(self):
        return {**super().get_config(), **self._stack_config()}

    def call(self, inputs, state=None, training=None, dropout_seed=None):
        inputs, state = self._window(inputs, state)
        dropout_seed = self._dropout_seed(training, dropout_seed)
        cell = self.cell
        # x_t·W_xh for a one-hot x_t is a row of W_xh: a gather, not a matmul.
        p = lookup(cell.W_xh + cell.b_h, tf.transpose(inputs))  # (T, B, n)
        carried = self._layer_states(state)  # L x (B, n)
        h = kernels.recurrence(p, carried[0], cell.W_hh, "tanh")  # (T, B, n)
        top, new_state = self._run_upper(h, carried, dropout_seed)
        logits = matmul_last_axis(top, cell.W_hy) + cell.b_y  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), new_state
