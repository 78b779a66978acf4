"""Any Keras RNN cell as a character model, trained by tf_rnn's own loop (the generic path).

A cell that keeps Keras's protocol — `state_size` (an int, or a list of ints for a cell
of several states), `call(x, states) -> (output, new_states)` — becomes a character
model: one-hot characters in, the cell, a linear output layer over its output. The
window is Keras's own unroll (`keras.layers.RNN`), differentiated by autodiff through
it: no hand-written gradient, no per-character tables (that fast path is the package's
own cells', `tf_rnn.models.kernels`). The state the package carries between windows is the
cell's states side by side, (B, S), so batch cursors, budgets, checkpoints, exact
resume, eval, sample, score and export work as for every model.

Keras's own cells are models of the table (`tf_rnn.base.model_table`): `keras_simplernn`
(SimpleRNNCell, relu), `keras_gru`, `keras_lstm`, each `num_nodes` wide
(`--set model=keras_gru`). Any other cell, a user's own included, is `keras_cell`: the
config field `cell` holds the cell as Keras serializes it (`cell_setting(cell)`), so
that every command that rebuilds the run's model rebuilds the cell (its class
registered with `keras.saving.register_keras_serializable`, its module imported).

The probe protocol (`tf_rnn.models`): the hidden layer is [output, new states] side by
side — the readout reads the first part, the next step starts from the second
(`recurrent_units`) — so the gradient and activity figures work for any cell; the
recurrent matrix is the cell's `recurrent_kernel` where it has one (SimpleRNN (n, n),
GRU (n, 3n), LSTM (n, 4n)), and the activity figures need a relu, tanh or sigmoid
`activation`. A cell without them trains without diagnostics (the trainer says so).
"""

import json

import keras
import tensorflow as tf

from tf_rnn.base import model_table
from tf_rnn.models.charmodel import CharModel, matmul_last_axis

# The activations whose activity figures the diagnostics know (`tf_rnn.inspect.probes.activity`).
_KNOWN_ACTIVATIONS = ("relu", "tanh", "sigmoid")


def cell_setting(cell):
    """The config field `cell` of a run of `cell` (model="keras_cell"): its Keras
    serialization as JSON text."""
    return json.dumps(keras.saving.serialize_keras_object(cell), sort_keys=True)


def cell_from_setting(setting):
    """The cell of a `cell` config field (JSON text, or its parsed dict); ValueError
    with what to do when Keras cannot rebuild it."""
    spec = json.loads(setting) if isinstance(setting, str) else setting
    try:
        cell = keras.saving.deserialize_keras_object(spec)
    except (TypeError, ValueError) as error:
        name = spec.get("class_name", "?") if isinstance(spec, dict) else "?"
        raise ValueError(
            f"Received a `cell` Keras cannot rebuild ({name}): {error}. A cell class of "
            f"one's own must be registered (@keras.saving.register_keras_serializable()) "
            f"and its module imported before the run's model is built.") from None
    if not hasattr(cell, "state_size"):
        raise ValueError(f"Received a `cell` without `state_size` ({type(cell).__name__}): "
                         f"a Keras RNN cell has `state_size` and `call(x, states)`.")
    return cell


def _sizes(state_size):
    """A cell's `state_size` -> the widths of its states, [int, ...]."""
    sizes = state_size if isinstance(state_size, (list, tuple)) else [state_size]
    if not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f"Received a cell with state_size {state_size!r}: the generic path "
                         f"carries states of one dimension, expected positive integers.")
    return list(sizes)


@model_table.implements("keras_cell")
@keras.saving.register_keras_serializable("tf_rnn")
class KerasCellModel(CharModel):
    """One-hot characters -> a Keras RNN cell -> a linear output layer (V, c).

    Args:
      alphabet_size: A.
      num_nodes: the width of a table model's cell (`make_cell`); None with `cell`
        (its width, `num_nodes` from then on, is the cell's output size).
      cell: a Keras RNN cell, or its serialization (a dict or JSON text): `keras_cell`.
      **kwargs: `CharModel`'s (init: the output layer's kernel, and a table cell's
        kernels; dropout on the output layer's input; seed, dtype, ...).
    """

    @classmethod
    def for_config(cls, config, alphabet_size, dtype=None):
        """`keras_cell`: the cell of the config field `cell` (its own width)."""
        return cls(alphabet_size, cell=config.cell, init=config.init,
                   init_mean=config.init_mean, init_stddev=config.init_stddev,
                   init_gain=config.init_gain, dropout=config.dropout, seed=config.seed,
                   dtype=dtype)

    def __init__(self, alphabet_size, num_nodes=None, cell=None, **kwargs):
        if isinstance(cell, (str, dict)):
            cell = cell_from_setting(cell)
        if cell is not None:
            num_nodes = getattr(cell, "output_size", None) or _sizes(cell.state_size)[0]
        super().__init__(alphabet_size, num_nodes, **kwargs)
        self.cell = cell if cell is not None else self.make_cell(num_nodes, *self._initializers)
        self._sizes = _sizes(self.cell.state_size)
        self.rnn = keras.layers.RNN(self.cell, return_sequences=True, return_state=True,
                                    dtype=self.dtype_policy)
        self.rnn.build((None, None, alphabet_size))
        kernel, _ = self._initializers
        self.V = self.add_weight(name="V", shape=(num_nodes, alphabet_size),
                                 initializer=kernel)
        self.c = self.add_weight(name="c", shape=(alphabet_size,), initializer="zeros")
        self.built = True

    def make_cell(self, num_nodes, kernel, recurrent):
        """A table model's cell, `num_nodes` wide (kernel, recurrent: the run's `init`)."""
        raise ValueError("Received no `cell`: KerasCellModel needs a Keras RNN cell (model "
                         "keras_cell), unless it is one of the table's (keras_gru, ...).")

    @property
    def state_size(self):
        return sum(self._sizes)

    def _states(self, state):
        """(B, S) -> the cell's states, a list of (B, s_i)."""
        return tf.split(state, self._sizes, axis=-1) if len(self._sizes) > 1 else [state]

    def call(self, inputs, state=None, training=None, dropout_seed=None):
        inputs, state = self._window(inputs, state)
        dropout_seed = self._dropout_seed(training, dropout_seed)
        out, *states = self.rnn(self.one_hot(inputs), initial_state=self._states(state))
        o = self._dropped(tf.transpose(out, [1, 0, 2]), dropout_seed)  # (T, B, o)
        logits = matmul_last_axis(o, self.V) + self.c  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), tf.concat(states, axis=-1)

    def _cell_step(self, ids, state):
        """ids (B,), state (B, S) -> the cell's output (B, o), new state (B, S)."""
        out, new_states = self.cell(self.one_hot(ids), self._states(state))
        return out, tf.concat(tf.nest.flatten(new_states), axis=-1)

    def step(self, ids, state):
        out, new_state = self._cell_step(ids, state)
        return tf.matmul(out, self.V) + self.c, new_state

    # The probe protocol: h = [output, new state].
    def hidden_step(self, ids, state):
        return tf.concat(self._cell_step(ids, state), axis=-1)

    def readout(self, h):
        return tf.matmul(h[:, :self.num_nodes], self.V) + self.c

    def carry(self, h, ids):
        return h[:, self.num_nodes:]

    @property
    def hidden_size(self):
        return self.num_nodes + self.state_size

    @property
    def recurrent_units(self):
        """The new states, the part of h that the next step reads."""
        return slice(self.num_nodes, self.num_nodes + self.state_size)

    @property
    def activation(self):
        """The cell's `activation` by name, where the diagnostics know it (else none: an
        AttributeError, so that the probe protocol reads as incomplete)."""
        name = getattr(self.cell, "activation", None)
        name = keras.activations.serialize(name) if callable(name) else name
        if name not in _KNOWN_ACTIVATIONS:
            raise AttributeError(f"{type(self.cell).__name__} has no activation the "
                                 f"diagnostics know ({', '.join(_KNOWN_ACTIVATIONS)})")
        return name

    @property
    def recurrent_matrix(self):
        """The cell's `recurrent_kernel`, as a method of the protocol (none: an
        AttributeError, as `activation`)."""
        kernel = getattr(self.cell, "recurrent_kernel", None)
        if kernel is None:
            raise AttributeError(f"{type(self.cell).__name__} has no recurrent_kernel")
        return lambda: kernel

    def get_config(self):
        config = {**super().get_config(),
                  "cell": keras.saving.serialize_keras_object(self.cell)}
        config.pop("num_nodes")  # the cell's
        return config


class _TableCell(KerasCellModel):
    """A Keras cell of the table: `cell_class(num_nodes, **cell_options)` with the run's
    `init` for its kernels."""

    cell_class, cell_options = None, {}

    @classmethod
    def for_config(cls, config, alphabet_size, dtype=None):
        return CharModel.for_config.__func__(cls, config, alphabet_size, dtype)

    def make_cell(self, num_nodes, kernel, recurrent):
        return self.cell_class(num_nodes, kernel_initializer=kernel,
                               recurrent_initializer=recurrent, **self.cell_options)

    def get_config(self):
        return CharModel.get_config(self)  # the cell is rebuilt from num_nodes


@model_table.implements("keras_simplernn")
@keras.saving.register_keras_serializable("tf_rnn")
class KerasSimpleRNN(_TableCell):
    """keras.layers.SimpleRNNCell(num_nodes, activation="relu")."""
    cell_class, cell_options = keras.layers.SimpleRNNCell, {"activation": "relu"}


@model_table.implements("keras_gru")
@keras.saving.register_keras_serializable("tf_rnn")
class KerasGRU(_TableCell):
    """keras.layers.GRUCell(num_nodes)."""
    cell_class = keras.layers.GRUCell


@model_table.implements("keras_lstm")
@keras.saving.register_keras_serializable("tf_rnn")
class KerasLSTM(_TableCell):
    """keras.layers.LSTMCell(num_nodes)."""
    cell_class = keras.layers.LSTMCell
