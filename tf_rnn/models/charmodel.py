"""Shared plumbing of the character models (`tf_rnn.models`, `tf_rnn.models.indrnn`).

`CharModel` is the base class of every character model: the window's arguments made
concrete, the zero state, the dropout masks, Keras's fit/evaluate and summary, the
one-character `step` and the plain reference loop; `lookup` and `matmul_last_axis`
are the fast path's two products. The interface every model keeps is written down in
`tf_rnn.models`.
"""

import keras
import tensorflow as tf

from tf_rnn.base import draws
from tf_rnn.models import cells as cells_lib


def matmul_last_axis(x, w):
    """(..., k) @ (k, m) -> (..., m) as one 2-D matmul."""
    lead = tf.shape(x)[:-1]
    y = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), w)
    return tf.reshape(y, tf.concat([lead, tf.shape(w)[-1:]], 0))


@tf.custom_gradient
def lookup(table, ids):
    """Rows of `table` (R, m) picked by int `ids` (...) -> (..., m): x·table for a one-hot x.

    The gradient is returned as a dense (R, m) tensor (a segment sum) rather than the
    IndexedSlices of `tf.gather`, so that no optimizer ever takes its sparse path, which
    is very slow under XLA (measured for the seed's Arch 1 training with Adadelta:
    about 100 characters per second, over 10 s a step, against 121k with a dense one).
    """

    def grad(dy):
        return tf.math.unsorted_segment_sum(dy, ids, tf.shape(table)[0]), None

    return tf.gather(table, ids), grad


def _logits(y_pred):
    return y_pred[0] if isinstance(y_pred, (tuple, list)) else y_pred


class CharModel(keras.Model):
    """Shared plumbing of the character models; subclasses set `self.cell`."""

    def __init__(self, alphabet_size, num_nodes, init="seed", init_mean=-0.1,
                 init_stddev=0.1, init_gain=1.0, dropout=0.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.alphabet_size = alphabet_size
        self.num_nodes = num_nodes
        self.init = init
        self.init_mean = init_mean
        self.init_stddev = init_stddev
        self.init_gain = init_gain
        if not 0 <= dropout < 1:
            raise ValueError(f"Received an invalid value for argument `dropout`, expected a "
                             f"number in [0, 1), got {dropout!r}.")
        self.dropout = dropout
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Received an invalid value for argument `seed`, expected an "
                             f"integer, got {seed!r}.")
        self.seed = seed  # of the dropout masks Keras's fit draws (`_dropout_seed`)
        self._initializers = cells_lib.initializers(init, init_mean, init_stddev, init_gain)

    @classmethod
    def for_config(cls, config, alphabet_size, dtype=None):
        """The model a run's `config` (`tf_rnn.base.config.Config`) asks for: its width, its
        initialisation, dropout and seed, and the fields of its own (`config_kwargs`)."""
        return cls(alphabet_size, config.num_nodes, init=config.init,
                   init_mean=config.init_mean, init_stddev=config.init_stddev,
                   init_gain=config.init_gain, dropout=config.dropout, seed=config.seed,
                   dtype=dtype, **cls.config_kwargs(config))

    @classmethod
    def config_kwargs(cls, config):
        """The constructor's arguments that this model takes from config fields of its
        own (the table of models, `tf_rnn.base.model_table`, lists those fields)."""
        return {}

    def _make_cell(self, cell):
        cell.build((None, self.alphabet_size))  # with a shape: summary() shows shapes
        self.built = True
        return cell

    def _window(self, inputs, state):
        """The `call` arguments made concrete: (B, T) integer ids, and the state, the zero
        state when None (model(ids) starts a stream). The batch size is read from the
        tensor, so a symbolic batch (keras.Input, a functional model) works too."""
        ids = self._ids(inputs)
        if state is None:
            state = self.zero_state(tf.shape(ids)[0])
        return ids, state

    def _ids(self, inputs):
        """inputs (B, T) -> integer ids (B, T).

        Float ids are cast, as `keras.layers.Embedding` casts them (a float `keras.Input`
        or a float array from a Keras pipeline). Called eagerly, ids that are not whole
        numbers in [0, A) raise a ValueError here, rather than deep inside a gather (or, on
        a GPU, silently reading zeros); a compiled step checks nothing, so the fast path
        is unchanged (its int32 ids pass through untouched).
        """
        ids = tf.convert_to_tensor(inputs)
        if ids.dtype not in (tf.int32, tf.int64):
            if not (ids.dtype.is_integer or ids.dtype.is_floating):
                raise ValueError(f"Received an invalid dtype for argument `inputs`, expected "
                                 f"integer ids (or whole-number floats), got {ids.dtype.name}.")
            cast = tf.cast(ids, tf.int32)
            if tf.executing_eagerly() and not bool(tf.reduce_all(
                    tf.cast(cast, ids.dtype) == ids)):
                bad = ids[tf.cast(cast, ids.dtype) != ids][0].numpy()
                raise ValueError(f"Received an invalid value for argument `inputs`, expected "
                                 f"whole-number ids, got {ids.dtype.name} ids such as {bad}.")
            ids = cast
        if tf.executing_eagerly() and tf.size(ids) > 0:
            low, high = int(tf.reduce_min(ids)), int(tf.reduce_max(ids))
            if low < 0 or high >= self.alphabet_size:
                raise ValueError(f"Received an invalid value for argument `inputs`, expected "
                                 f"ids in [0, {self.alphabet_size}), got ids from {low} to "
                                 f"{high}.")
        return ids

    def compute_output_shape(self, inputs_shape, state_shape=None):
        """(B, T) -> ((B, T, A) logits, (B, S) state)."""
        batch, steps = tuple(inputs_shape)[:2]
        return (batch, steps, self.alphabet_size), (batch, self.state_size)

    def summary(self, *args, **kwargs):
        """Keras's summary of the model as one layer over (B, T) ids: its output shapes are
        the window's, ((B, T, A) logits, (B, S) state), not the cell's one step
        (`expand_nested=True` lists the cell inside)."""
        ids, nodes = keras.Input((None,), dtype="int32", name="ids"), len(self._inbound_nodes)
        try:
            keras.Model(ids, self(ids), name=self.name).summary(*args, **kwargs)
        finally:  # leave no node behind: a model holding this one shows its own shapes
            del self._inbound_nodes[nodes:]

    # Keras's fit/evaluate: the model returns (logits, state); losses and metrics take
    # the logits. Each batch is an independent window from the zero state
    # (docs/models.md, Keras-native use).
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, y, _logits(y_pred), sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, _logits(y_pred), sample_weight)

    @property
    def state_size(self):
        return self.cell.state_size

    def zero_state(self, batch_size):
        return keras.ops.zeros([batch_size, self.state_size], dtype=self.compute_dtype)

    def _dropped(self, h, dropout_seed):
        """h (T, B, n) with a `dropout` fraction of each stream's units zeroed for the whole
        window, the rest scaled by 1/(1 - dropout).

        One mask per stream and window, shared by its time steps (the "variational" dropout
        of Gal & Ghahramani 2016): T times fewer random draws than a mask per step, which
        measured 2.6x the whole text8_best step. Only while training: the train step passes
        `dropout_seed`, a (2,) integer tensor (the run's seed and its step), so the masks
        are a function of the step, with or without XLA (`tf_rnn.base.draws`), and a resumed run
        draws the same ones. Evaluation, sampling and export pass none; Keras's `fit`
        gets its seed from `_dropout_seed`.
        """
        if dropout_seed is None or not self.dropout:
            return h
        shape = tf.concat([[1], tf.shape(h)[1:]], 0)  # (1, B, n)
        keep = draws.uniform(dropout_seed, shape) >= self.dropout  # the same under XLA
        return h * (tf.cast(keep, h.dtype) / (1.0 - self.dropout))

    # Stacking (`tf_rnn.models.stacking`): a model that does not stack is one layer.
    num_layers, residual = 1, False

    def _dropout_seed(self, training, dropout_seed):
        """The `dropout_seed` of a call: the one given (the train step's), else, when Keras
        calls with training=True (`fit`), (seed, optimizer.iterations): the masks of
        `tf-rnn train`, a function of the step, drawn by `_dropped` alike. A model trained
        inside another (e.g. a `keras.Sequential`) has no optimizer of its own: it draws
        its step's seed at random (`tf.random`, reproducible under
        `keras.utils.set_random_seed`). None (no dropout) otherwise.
        """
        if dropout_seed is not None or not training or not self.dropout:
            return dropout_seed
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None:
            step = tf.cast(optimizer.iterations, tf.int64)
        else:
            step = tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), step])

    def one_hot(self, ids):
        return tf.one_hot(ids, self.alphabet_size, dtype=self.compute_dtype)

    def step(self, ids, state):
        """ids: (B,) -> logits (B, A), new state."""
        logits, new_state = self.cell(self.one_hot(ids), state)
        return logits, new_state

    # The probe protocol (the module docstring): the cell's step, split at h. Arch 1 and
    # the Elman model carry h itself; Arch 2 says otherwise.
    recurrent_units = None

    def hidden_step(self, ids, state):
        """ids (B,), state (B, S) -> the step's hidden layer h (B, H)."""
        return self.cell.hidden(self.one_hot(ids), state)

    def readout(self, h):
        """h (B, H) -> logits (B, A)."""
        return self.cell.readout(h)

    def carry(self, h, ids):
        """The state the step after h starts from: h (B, S) itself."""
        return h

    @property
    def hidden_size(self):
        return self.state_size

    def call_reference(self, inputs, state):
        """The plain loop: `step` once per time step. inputs (B, T) -> (B, T, A), state."""
        outputs = []
        for t in range(inputs.shape[1]):
            logits, state = self.step(inputs[:, t], state)
            outputs.append(logits)
        return tf.stack(outputs, axis=1), state

    def get_config(self):
        return {**super().get_config(), "alphabet_size": self.alphabet_size,
                "num_nodes": self.num_nodes, "init": self.init,
                "init_mean": self.init_mean, "init_stddev": self.init_stddev,
                "init_gain": self.init_gain, "dropout": self.dropout, "seed": self.seed}
