"""Character language models: a cell plus the loop that runs it over a window.

Every model has the same interface, used by training, sampling and export:
  call(inputs (B, T) int ids, state) -> logits (B, T, A), new state   (teacher-forced;
                                        state defaults to the zero state; the train step
                                        adds dropout_seed= when config.dropout > 0, and
                                        Keras's fit passes training=True)
  step(ids (B,), state)             -> logits (B, A), new state       (one character)
  zero_state(batch_size)            -> (B, state_size)
  state_size                        S

and what the diagnostics (`tf_rnn.inspect.probes`) ask of a model (`PROBE_PROTOCOL`; the toy tasks'
`tf_rnn.toys.sequence.ElmanSequenceModel` has it too): one step split at its hidden layer,
so that a probe can be added to h, and the figures that say how h feeds back:
  hidden_step(x_t, state) -> h (B, H)       the step's hidden layer (x_t: ids (B,))
  readout(h)              -> logits (B, A)
  carry(h, x_t)           -> the state the next step starts from
  hidden_size             H
  activation              "relu", "tanh" or "sigmoid": h's non-linearity
  recurrent_units         None when all of h feeds back, else the slice of h that does
  recurrent_matrix()      the matrix through which the state feeds back
and, for a stack of L > 1 equal layers (optional; absent means 1):
  num_layers              L: h is the L layers' h side by side, (B, L·n)
  hidden_step(x_t, state, probe=p)   p (B, H) added to each layer's h as it is formed,
                          before the layer above reads it (dL/dp is then every
                          layer's whole gradient, the path up the stack included)
A model class of its own plugs into the diagnostics by providing these.

`call` takes the fast path: everything that does not depend on the previous state is
computed for the whole window at once (what depends on one input character alone, as
rows of per-character tables), and only the recurrence (`tf_rnn.models.kernels.recurrence`)
runs step by step. `call_reference` runs the cell one step at a time; tests hold the
two equal.

The shared plumbing of these models is `tf_rnn.models.charmodel.CharModel`; the IndRNN model
(`model="indrnn"`) lives in `tf_rnn.models.indrnn`. The Elman model, Arch 1 with `sum` or
`mul` and IndRNN stack (`num_layers`, `residual`) one way, `tf_rnn.models.stacking`. Keras's
own cells and any other Keras RNN cell take the generic path, `tf_rnn.models.keras_cell`.

Imports `base` alone: a model knows nothing of data, files or runs.
"""

import importlib

from tf_rnn.base import model_table
from tf_rnn.models.classic import Arch1Model, Arch2Model, ElmanModel
from tf_rnn.models.indrnn import IndRNNModel
from tf_rnn.models.keras_cell import KerasCellModel

# What the diagnostics (`tf_rnn.inspect.probes`) need of a model (the module docstring says what each is).
PROBE_PROTOCOL = ("hidden_step", "readout", "carry", "hidden_size", "activation",
                  "recurrent_units", "recurrent_matrix", "state_size", "zero_state")


def missing_probe_protocol(model):
    """The names of `PROBE_PROTOCOL` that `model` lacks ([] when it has them all)."""
    return [name for name in PROBE_PROTOCOL if not hasattr(model, name)]


# Each model's module, named by the table, registers its class (`model_table.implements`).
for _module in dict.fromkeys(e.module for e in model_table.MODELS.values()):
    importlib.import_module(f"tf_rnn.models.{_module}")


def build_model(config, alphabet_size, dtype=None):
    """The model named by `config.model` (the table of models, `tf_rnn.base.model_table`),
    with its initialisation, weights built."""
    return model_table.model_class(config.model).for_config(config, alphabet_size, dtype)
