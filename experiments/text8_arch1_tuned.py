"""Arch 1 on text8 with the settings tuned for quality per minute (preset text8_arch1_tuned).

    python -m experiments.text8_arch1_tuned [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

from experiments._run import main

if __name__ == "__main__":
    main("text8_arch1_tuned", __doc__)
