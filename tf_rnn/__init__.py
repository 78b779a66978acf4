"""tf_rnn: simple recurrent networks in TensorFlow 2 / Keras 3.

Importing the package is cheap: TensorFlow is loaded only by the submodules that
need it (`tf_rnn.models`, `tf_rnn.training`, ...), and its C++ start-up chatter is
silenced unless the user has set ``TF_CPP_MIN_LOG_LEVEL`` themselves.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
