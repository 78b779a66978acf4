"""The lowest validation bits per character per CPU-minute that tf_rnn has found for a
simple RNN (preset text8_best: Arch 1 with multiplicative integration; README,
Performance).

    python -m experiments.text8_best [--data PATH] [--workdir DIR] [--steps N] [--set k=v]
"""

from experiments._run import main

if __name__ == "__main__":
    main("text8_best", __doc__)
