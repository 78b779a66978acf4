"""The lowest validation bits per character per CPU-minute that tf_rnn has found for a
simple RNN (preset text8_best: Arch 1 with multiplicative integration;
docs/quality.md).

    python -m experiments.text8_best [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

import sys

from experiments import _run


def main(argv=None):
    return _run.train_preset("text8_best", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
