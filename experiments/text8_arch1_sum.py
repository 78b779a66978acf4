"""Arch 1 with element-wise addition, the seed author's published variant (preset
text8_arch1_sum): a = x·U + h·W + b, tanh, n = 50, SGD 5.0 halved every 5000 steps.

    python -m experiments.text8_arch1_sum [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

from experiments._run import main

if __name__ == "__main__":
    main("text8_arch1_sum", __doc__)
