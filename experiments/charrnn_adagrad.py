"""S3: the char-RNN trained with Adagrad, with the seed's settings (preset charrnn_adagrad).

tanh Elman network of 75 units over the corpus's own character set, one stream of
20-character windows, W_hh = 0.01·I and N(0, 0.01²) kernels, Adagrad lr 1e-2 (eps
1e-8, accumulators from zero), every gradient element clipped to ±5, 50 epochs. The
seed's bugs are fixed by the shared trainer: fresh gradients every step, the hidden
state carried from window to window, sampling that carries its state from character
to character, and a loss curve (TensorBoard train/loss) rather than one number.

    python -m experiments.charrnn_adagrad --data PATH [--workdir DIR] [--steps N] [--set k=v]
"""

import sys

from experiments import _run


def main(argv=None):
    return _run.train_preset("charrnn_adagrad", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
