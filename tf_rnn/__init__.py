"""tf_rnn: simple recurrent networks in TensorFlow 2 / Keras 3.

Importing the package is cheap and changes nothing in the process: TensorFlow is
loaded only by the submodules that need it (`tf_rnn.models`, `tf_rnn.train.training`, ...).
The CLI and the experiments quiet TensorFlow's own log lines (`tf_rnn.base.logs`); a
library user keeps TensorFlow's settings as they are.

The package is ten folders, one per layer, each importing only from itself and
those below: docs/architecture.md has the map and why.
"""

__version__ = "0.1.0"
