"""Character language models: a cell plus the loop that runs it over a window.

Every model has the same interface, used by training, sampling and export:
  call(inputs (B, T) int ids, state) -> logits (B, T, A), new state   (teacher-forced;
                                        state defaults to the zero state; the train step
                                        adds dropout_seed= when config.dropout > 0, and
                                        Keras's fit passes training=True)
  step(ids (B,), state)             -> logits (B, A), new state       (one character)
  zero_state(batch_size)            -> (B, state_size)
  state_size                        S

and what `tf_rnn.diagnostics` asks of a model (`PROBE_PROTOCOL`; the toy tasks'
`tf_rnn.sequence.ElmanSequenceModel` has it too): one step split at its hidden layer,
so that a probe can be added to h, and the figures that say how h feeds back:
  hidden_step(x_t, state) -> h (B, H)       the step's hidden layer (x_t: ids (B,))
  readout(h)              -> logits (B, A)
  carry(h, x_t)           -> the state the next step starts from
  hidden_size             H
  activation              "relu", "tanh" or "sigmoid": h's non-linearity
  recurrent_units         None when all of h feeds back, else the slice of h that does
  recurrent_matrix()      the matrix through which the state feeds back
A model class of its own plugs into the diagnostics by providing these.

`call` takes the fast path: everything that does not depend on the previous state is
computed for the whole window at once (what depends on one input character alone, as
rows of per-character tables), and only the recurrence (`tf_rnn.kernels.recurrence`)
runs step by step. `call_reference` runs the cell one step at a time; tests hold the
two equal.
"""

import keras
import tensorflow as tf

from tf_rnn import cells as cells_lib
from tf_rnn import draws
from tf_rnn import kernels

# What `tf_rnn.diagnostics` needs of a model (the module docstring says what each is).
PROBE_PROTOCOL = ("hidden_step", "readout", "carry", "hidden_size", "activation",
                  "recurrent_units", "recurrent_matrix", "state_size", "zero_state")


def missing_probe_protocol(model):
    """The names of `PROBE_PROTOCOL` that `model` lacks ([] when it has them all)."""
    return [name for name in PROBE_PROTOCOL if not hasattr(model, name)]


def matmul_last_axis(x, w):
    """(..., k) @ (k, m) -> (..., m) as one 2-D matmul."""
    lead = tf.shape(x)[:-1]
    y = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), w)
    return tf.reshape(y, tf.concat([lead, tf.shape(w)[-1:]], 0))


@tf.custom_gradient
def _lookup(table, ids):
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
        are a function of the step, with or without XLA (`tf_rnn.draws`), and a resumed run
        draws the same ones. Evaluation, sampling and export pass none; Keras's `fit`
        gets its seed from `_dropout_seed`.
        """
        if dropout_seed is None or not self.dropout:
            return h
        shape = tf.concat([[1], tf.shape(h)[1:]], 0)  # (1, B, n)
        keep = draws.uniform(dropout_seed, shape) >= self.dropout  # the same under XLA
        return h * (tf.cast(keep, h.dtype) / (1.0 - self.dropout))

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


@keras.saving.register_keras_serializable("tf_rnn")
class Arch1Model(CharModel):
    """Arch 1 (hidden feedback), each `combine` with its restructured unroll.

    concat: f(concat(x·U, h·W) + b) = concat(q, r) with q = f(x·U + b[:n]) depending
    on the input alone, and r = f(q_prev·W[:n] + r_prev·W[n:] + b[n:]): only r is
    recurrent, so the sequential work per step is one (B, n) x (n, n) matmul.
    sum and mul: a = p_t + g_t ⊙ (h·W) with p_t = β₂⊙(x·U) + b and g_t = α⊙(x·U) + β₁
    (mul) or p_t = x·U + b, g_t = 1 (sum), both rows of per-character tables; the
    recurrence is the one kernel, gated or not.
    """

    def __init__(self, alphabet_size, num_nodes, combine="concat", activation="relu",
                 **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.Arch1Cell(
            alphabet_size, num_nodes, combine=combine, activation=activation,
            kernel_initializer=kernel, recurrent_initializer=recurrent,
            dtype=self.dtype_policy))
        self.combine, self.activation = combine, activation

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
        # gather instead of a one-hot matmul. Measured 1.3-1.9x the whole train step.
        q_table = f(cell.U + cell.b[:n])  # (A, n)
        p_table = tf.matmul(q_table, cell.W[:n]) + cell.b[n:]  # (A, n)
        logit_table = tf.matmul(q_table, cell.V[:n]) + cell.c  # (A, A)
        p_first = tf.matmul(state[:, :n], cell.W[:n]) + cell.b[n:]  # (B, n): carried q
        p = tf.concat([p_first[None], _lookup(p_table, ids[:-1])], axis=0)  # (T, B, n)
        r = kernels.recurrence(p, state[:, n:], cell.W[n:], self.activation)  # (T, B, n)
        # Dropout (training only) reaches the recurrent half r: q's share is a table row.
        logits = (_lookup(logit_table, ids)
                  + matmul_last_axis(self._dropped(r, dropout_seed), cell.V[n:]))  # (T, B, A)
        new_state = tf.concat([_lookup(q_table, ids[-1]), r[-1]], axis=-1)  # (B, 2n)
        return tf.transpose(logits, [1, 0, 2]), new_state

    def _call_integrated(self, ids, state, dropout_seed=None):
        cell = self.cell
        if self.combine == "sum":
            p, gate = _lookup(cell.U + cell.b, ids), None  # (T, B, n)
        else:
            # One (A, 2n) table, one gather: [p_t | g_t] for each character.
            table = tf.concat([cell.beta2 * cell.U + cell.b, cell.alpha * cell.U + cell.beta1],
                              axis=-1)
            p, gate = tf.split(_lookup(table, ids), 2, axis=-1)  # (T, B, n) each
        h = kernels.recurrence(p, state, cell.W, self.activation, gate=gate)  # (T, B, n)
        logits = matmul_last_axis(self._dropped(h, dropout_seed), cell.V) + cell.c  # (T, B, A)
        return tf.transpose(logits, [1, 0, 2]), h[-1]

    @property
    def recurrent_units(self):
        """concat: r = h[n:2n), the half of h that feeds back; sum, mul: all of h."""
        return slice(self.num_nodes, 2 * self.num_nodes) if self.combine == "concat" else None

    def recurrent_matrix(self):
        """concat: W[n:] (n, n), the r -> r block; sum, mul: W (n, n)."""
        return self.cell.W[self.num_nodes:] if self.combine == "concat" else self.cell.W

    def get_config(self):
        return {**super().get_config(), "combine": self.combine,
                "activation": self.activation}


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

    def __init__(self, alphabet_size, num_nodes, feedback="sample", **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        if self.dropout:
            raise ValueError("Arch 2's teacher-forced window has no recurrent hidden layer to "
                             "drop from: dropout is for arch1 and elman.")
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
        # a stream's start. A gather replaces the (B*T)-row matmuls (measured 1.2-2x).
        fed = tf.concat([cell.U, cell.W], axis=-1) + cell.b  # (A, 2n): o_prev = one_hot(x)
        unfed = tf.concat([cell.U, tf.zeros_like(cell.W)], axis=-1) + cell.b  # o_prev = 0
        table = tf.matmul(tf.tanh(tf.concat([fed, unfed], 0)), cell.V) + cell.c  # (2A, A)
        fresh = tf.cast(tf.reduce_all(state == 0, axis=-1, keepdims=True), inputs.dtype)
        rows = tf.concat([inputs[:, :1] + A * fresh, inputs[:, 1:]], axis=1)  # (B, T)
        return _lookup(table, rows), self.one_hot(inputs[:, -1])  # (B, T, A), (B, A)

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


@keras.saving.register_keras_serializable("tf_rnn")
class ElmanModel(CharModel):
    """The S3 char-RNN: h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h); y_t = h_t W_hy + b_y."""

    def __init__(self, alphabet_size, num_nodes, **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        kernel, recurrent = self._initializers
        self.cell = self._make_cell(cells_lib.ElmanCell(
            alphabet_size, num_nodes, alphabet_size, activation="tanh",
            kernel_initializer=kernel, recurrent_initializer=recurrent,
            dtype=self.dtype_policy))

    activation = "tanh"

    def recurrent_matrix(self):
        return self.cell.W_hh

    def call(self, inputs, state=None, training=None, dropout_seed=None):
        inputs, state = self._window(inputs, state)
        dropout_seed = self._dropout_seed(training, dropout_seed)
        cell = self.cell
        # x_t·W_xh for a one-hot x_t is a row of W_xh: a gather, not a matmul.
        p = _lookup(cell.W_xh + cell.b_h, tf.transpose(inputs))  # (T, B, n)
        h = kernels.recurrence(p, state, cell.W_hh, "tanh")  # (T, B, n)
        logits = matmul_last_axis(self._dropped(h, dropout_seed), cell.W_hy) + cell.b_y
        return tf.transpose(logits, [1, 0, 2]), h[-1]


MODEL_CLASSES = {"arch1": Arch1Model, "arch2": Arch2Model, "elman": ElmanModel}


def build_model(config, alphabet_size, dtype=None):
    """The model named by `config.model`, with its initialisation, weights built."""
    kwargs = dict(init=config.init, init_mean=config.init_mean,
                  init_stddev=config.init_stddev, init_gain=config.init_gain,
                  dropout=config.dropout, seed=config.seed, dtype=dtype)
    if config.model == "arch1":
        kwargs.update(combine=config.combine, activation=config.activation)
    if config.model == "arch2":
        kwargs["feedback"] = config.feedback
    return MODEL_CLASSES[config.model](alphabet_size, config.num_nodes, **kwargs)
