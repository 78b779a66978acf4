"""Arch 1 (hidden-feedback RNN) on text8 with the seed's settings (preset text8_arch1).

    python -m experiments.text8_arch1 [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

from experiments._run import main

if __name__ == "__main__":
    main("text8_arch1", __doc__)
