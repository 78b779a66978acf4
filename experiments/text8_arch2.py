"""Arch 2 (output-feedback RNN, teacher forcing) on text8 with the seed's settings.

    python -m experiments.text8_arch2 [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

from experiments._run import main

if __name__ == "__main__":
    main("text8_arch2", __doc__)
