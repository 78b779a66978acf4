"""tf_rnn: simple recurrent networks in TensorFlow 2 / Keras 3.

Importing the package is cheap: TensorFlow is loaded only by the submodules that
need it (`tf_rnn.models`, `tf_rnn.training`, ...), and its C++ start-up chatter is
silenced unless the user has set ``TF_CPP_MIN_LOG_LEVEL`` (or ``TF_RNN_VERBOSE=1``)
themselves; the CLI and the experiments also drop the native log lines that this
variable no longer reaches (`tf_rnn.logs`).
"""

import os

# Set here (not by the user): `show_tensorflow_logs` may take it back before TF loads.
_QUIETED = "TF_CPP_MIN_LOG_LEVEL" not in os.environ and os.environ.get(
    "TF_RNN_VERBOSE", "").strip().lower() not in ("1", "true", "yes", "on")
if _QUIETED:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"


def show_tensorflow_logs():
    """Undoes the quieting above (for `--verbose`); effective before TensorFlow loads."""
    if _QUIETED:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)

__version__ = "0.1.0"
