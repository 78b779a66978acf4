"""Arch 1 on text8 with the settings tuned for quality per minute (preset text8_arch1_tuned).

    python -m experiments.text8_arch1_tuned [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

import sys

from experiments import _run


def main(argv=None):
    return _run.train_preset("text8_arch1_tuned", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
