"""The table of character models: each model declared once.

An entry says what the rest of the package asks of a model before any weight exists:
its name (`--set model=NAME`), one line of what it is (`--help`, docs/models.md), the
config fields only it reads, whether it stacks (`num_layers > 1`, `residual`) and takes
dropout, which initialisations it cannot use and why. Config validation
(`tf_rnn.base.config`) reads it; the model class behind a name registers itself with
`implements(name)` and builds itself from a config (`for_config`), so that
`tf_rnn.models.build_model` is one lookup. Every model keeps the probe protocol the
diagnostics read (`tf_rnn.models.PROBE_PROTOCOL`).

Adding a model: a module of `tf_rnn/models/` with its model class (`@implements("name")`,
`config_kwargs` for its own fields; its cell's one-step math, or a cell of `cells`), an
entry here naming that module, a config field for each setting of its own, and its
tests: `esn` is the example.
"""

import dataclasses

# Why Arch 1's concat form has no stacked layers (config validation and the model say it).
CONCAT_DOES_NOT_STACK = (
    "concat's recurrence reads its own layer's [x·U, h·W]: its state is concat(q, r), "
    "2n wide, with q = f(x·U + b) a function of the input alone, so a layer above would "
    "read a 2n-wide sequence half of which is a copy of its input's projection, with no "
    "width to match for residual and a state split that stacking would have to re-define "
    "(sum and mul are n wide, all of it recurrent)")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the table.

    Attributes:
      name: the value of the config field `model`.
      summary: one line: what it is.
      fields: config fields that only the models listing them read.
      stacks: whether `num_layers > 1` and `residual` apply (if not, `unstacked` says
        why); `no_stack` names settings of its own fields under which it does not
        stack: {field: {value: why}}.
      dropout: whether `dropout` applies.
      refused_inits: {init: why it cannot work}.
      ignores: {general field: why this model does not read it} (refused unless at its
        default, as a model-specific field is elsewhere).
      needs: fields that must be set (not left at their defaults) for this model.
      module: the module of `tf_rnn/models/` that holds its class (`tf_rnn.models`
        imports it, and the class registers itself with `implements`).
    """

    name: str
    summary: str
    fields: tuple = ()
    stacks: bool = False
    unstacked: str = ""
    no_stack: dict = dataclasses.field(default_factory=dict)
    dropout: bool = False
    refused_inits: dict = dataclasses.field(default_factory=dict)
    ignores: dict = dataclasses.field(default_factory=dict)
    needs: tuple = ()
    module: str = "classic"

    def reads(self, field):
        """Whether a run of this model reads the model-specific `field`."""
        return field in self.fields or (field == "dropout" and self.dropout) or (
            field in STACK_FIELDS and self.stacks)


STACK_FIELDS = ("num_layers", "residual")

# Why the Keras cells do not stack here, and what does.
KERAS_CELLS_UNSTACKED = (
    "a Keras cell's output and its states need not be one sequence of one width (an LSTM "
    "carries [h, c]); stack Keras cells with keras.layers.StackedRNNCells as model "
    "keras_cell")
_GATES_NOT_SQUARE = ("the {} cell's recurrent kernel is (n, {}n), the gates' side by "
                     "side: it is no square matrix to start at init_gain·I")

MODELS = {e.name: e for e in (
    ModelEntry(
        "arch1", "hidden feedback (S4): concat, sum or mul of x·U and h·W",
        fields=("combine", "activation"), stacks=True, dropout=True,
        no_stack={"combine": {"concat": CONCAT_DOES_NOT_STACK}}),
    ModelEntry(
        "arch2", "output feedback (S5), trained with teacher forcing",
        fields=("feedback",),
        unstacked="Arch 2 feeds back its output, not a hidden layer (teacher-forced, its "
                  "window has no recurrent hidden sequence for a layer above to read)",
        refused_inits={"irnn": "Arch 2's fed-back kernel W maps the previous output (one "
                               "unit per character) to the hidden units: it is no "
                               "recurrent square matrix to start at the identity"}),
    ModelEntry(
        "elman", "the Elman char-RNN (S3): h = tanh(x·W_xh + h·W_hh + b)",
        stacks=True, dropout=True),
    ModelEntry(
        "indrnn", "IndRNN: h = relu(x·W + b + u⊙h), a recurrent weight per unit",
        fields=("indrnn_gamma",), stacks=True, dropout=True, module="indrnn",
        refused_inits={"irnn": "IndRNN's recurrent weights are the vector u, which starts "
                               "U(0, indrnn_gamma^(1/num_unrollings)) whatever the init "
                               "(init chooses its input and output kernels): there is no "
                               "recurrent matrix to start at init_gain·I"}),
    ModelEntry(
        "keras_simplernn", "Keras's SimpleRNNCell (relu), through the generic path",
        module="keras_cell",
        unstacked=KERAS_CELLS_UNSTACKED, dropout=True),
    ModelEntry(
        "keras_gru", "Keras's GRUCell, through the generic path",
        module="keras_cell",
        unstacked=KERAS_CELLS_UNSTACKED, dropout=True,
        refused_inits={"irnn": _GATES_NOT_SQUARE.format("GRU", 3)}),
    ModelEntry(
        "keras_lstm", "Keras's LSTMCell, through the generic path",
        module="keras_cell",
        unstacked=KERAS_CELLS_UNSTACKED, dropout=True,
        refused_inits={"irnn": _GATES_NOT_SQUARE.format("LSTM", 4)}),
    ModelEntry(
        "keras_cell", "any Keras RNN cell (the config field `cell`), a user's own included",
        module="keras_cell",
        fields=("cell",), unstacked=KERAS_CELLS_UNSTACKED, dropout=True, needs=("cell",),
        ignores={"num_nodes": "the cell has its own width"},
        refused_inits={"irnn": "the cell has its own initializers (init chooses the output "
                               "layer's kernel alone): there is no recurrent matrix of "
                               "tf_rnn's to start at init_gain·I"}),
    ModelEntry(
        "esn", "echo state network: a fixed random Elman reservoir, its readout trained",
        module="esn", fields=("esn_radius",),
        unstacked="an echo state network is one reservoir, its readout the only layer trained",
        refused_inits={"irnn": "the reservoir is rescaled to esn_radius, so init_gain·I "
                               "would start as esn_radius·I whatever the gain"}),
)}

# Config fields that some models read and others do not (each entry says which).
MODEL_FIELDS = tuple(dict.fromkeys(
    [f for e in MODELS.values() for f in e.fields] + ["dropout", *STACK_FIELDS]))

_CLASSES = {}  # name: the model class that `implements` it


def implements(name):
    """Class decorator: the model class of the table's entry `name`."""
    if name not in MODELS:
        raise ValueError(f"No model {name!r} in the table; known: {sorted(MODELS)}.")

    def register(cls):
        _CLASSES[name] = cls
        return cls

    return register


def model_class(name):
    """The class registered for `name` (its module imported: `tf_rnn.models` does)."""
    return _CLASSES[name]
