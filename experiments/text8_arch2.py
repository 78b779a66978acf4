"""Arch 2 (output-feedback RNN, teacher forcing) on text8 with the seed's settings.

    python -m experiments.text8_arch2 [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

import sys

from experiments import _run


def main(argv=None):
    return _run.train_preset("text8_arch2", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
