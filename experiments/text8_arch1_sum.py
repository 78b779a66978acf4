"""Arch 1 with element-wise addition, the seed author's published variant (preset
text8_arch1_sum): a = x·U + h·W + b, tanh, n = 50, SGD 5.0 halved every 5000 steps.

    python -m experiments.text8_arch1_sum [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

import sys

from experiments import _run


def main(argv=None):
    return _run.train_preset("text8_arch1_sum", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
