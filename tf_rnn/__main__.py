"""`python -m tf_rnn ...` is `tf-rnn ...` (the console script), e.g. `python -m tf_rnn --help`.

Start-up stays cheap: `tf_rnn.cli` imports TensorFlow only once a command runs.
"""

import sys

from tf_rnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
