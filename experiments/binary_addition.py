"""S6: binary addition by an Elman network that must learn to carry the one.

2 inputs (one bit of each addend, least-significant first), 16 sigmoid hidden units,
1 sigmoid output, weights U(-1, 1); plain SGD at lr 0.1 on one random 8-bit addition
(addends < 128) per update, with true BPTT through the 8 steps, as in the seed. Two
choices of ours, each with a switch back to the seed: the cost is cross-entropy
summed over the bits (`--loss sse`: the seed's squared error), and the layers have
biases, starting at zero (`--no-bias`: the seed's bias-free network); with the seed's
choices fewer runs learn within 10 000 samples, or generalise to 32 bits. Every 100
samples it checks all 128 x 128 additions; at the end it also scores 10 000 random
32-bit additions it never trained on. With the `plot` extra, --plot FILE.png draws
each seed's loss and share of exact sums over all those additions at every check.

    python -m experiments.binary_addition [--samples 10000] [--seeds 1] [--workdir DIR]
                                          [--plot FILE.png]
"""

import sys

import numpy as np

from experiments import _run
from tf_rnn import cli
from tf_rnn.cli import arguments


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.binary_addition",
                                 description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=10000, help="training additions (updates)")
    p.add_argument("--seeds", type=int, default=1, help="independent runs (K members)")
    p.add_argument("--seed", type=int, default=0, help="base random seed")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    p.add_argument("--loss", default="bce", choices=("bce", "sse"),
                   help="bce: cross-entropy; sse: the seed's 0.5·(y - o)^2; summed over bits")
    p.add_argument("--no-bias", action="store_true", help="no biases, as in the seed")
    p.add_argument("--bits", type=int, default=8, help="bits of the training sums")
    p.add_argument("--test-bits", type=int, default=32, help="bits of the test sums")
    p.add_argument("--test-count", type=int, default=10000)
    p.add_argument("--check-every", type=int, default=100,
                   help="test every this many samples for exactness on all pairs")
    p.add_argument("--print-every", type=int, default=1000, help="seed-style progress")
    _run.add_toy_arguments(p, "binary_addition")
    p.add_argument("--plot", metavar="FILE.png", type=arguments.output_path,
                   help="draw the loss and exactness per "
                   "seed over training (the `plot` extra)")
    return p.parse_args(argv)


def _show(model, tasks, a, b, bits):
    """The seed's progress lines for seed 0 on the addition a + b."""
    inputs, targets = tasks.addition_task([a], [b], bits)
    out = 1 / (1 + np.exp(-tasks.predict(model, inputs)[0, :, 0, 0]))  # (bits,)
    pred = (out > 0.5).astype(int)
    error = np.abs(targets[0, :, 0] - out).sum()
    return (f"Error: {error:.4f}\nPred: {pred[::-1]}\nTrue: {targets[0, ::-1, 0].astype(int)}"
            f"\n{a} + {b} = {int(tasks.from_bits(pred[None])[0])}\n------------")


def run(args):
    settings = _run.toy_settings(args, "binary_addition")
    import keras
    import tensorflow as tf
    import tqdm

    from tf_rnn.engine import steps, summaries
    from tf_rnn.inspect import plots
    from tf_rnn.models import cells
    from tf_rnn.run.directory import Workdir
    from tf_rnn.toys import sequence, tasks

    if args.plot:
        plots.require_matplotlib()  # a missing extra fails before training

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    kernel, recurrent = cells.initializers("uniform")
    model = sequence.ElmanSequenceModel(
        2, args.hidden, 1, "sigmoid", members=args.seeds, use_bias=not args.no_bias,
        kernel_initializer=kernel, recurrent_initializer=recurrent)
    train_step = steps.make_train_step(
        model, keras.optimizers.SGD(args.lr),
        loss_fn=sequence.make_loss(args.loss, reduce_time="sum"), **settings)
    a, b = tasks.random_addends(args.samples, args.bits, rng)
    inputs, targets = (tf.constant(t) for t in tasks.addition_task(a, b, args.bits))
    pairs = tasks.addition_task(*tasks.all_addend_pairs(args.bits), args.bits)
    exact_check, first = tasks.first_exact_check(model, *pairs, seed=args.seed)
    history = []  # (samples, (K,) loss, (K,) exact share) over all pairs, for the picture

    def check(done):
        if args.print_every and done % args.print_every == 0:
            tqdm.tqdm.write(_show(model, tasks, int(a[done - 1]), int(b[done - 1]),
                                  args.bits), file=sys.stderr)
        exact_check(done)
        if args.plot:
            out = tasks.predict(model, pairs[0])  # (N, bits, K, 1)
            loss = sequence.per_member_loss(args.loss, tf.constant(out[..., 0]), pairs[1],
                                            reduce_time="sum")
            history.append((done, loss.numpy(), tasks.exact_fraction(out, pairs[1])))
        return False  # train on all the samples, as the seed does

    workdir = Workdir(args.workdir).create()
    writer = tf.summary.create_file_writer(str(workdir.events_dir))
    fit = sequence.fit(model, train_step, lambda i: (inputs[i:i + 1], targets[i:i + 1]),
                       args.samples, check=check, check_every=args.check_every,
                       log_every=100, writer=writer, progress=not args.no_progress,
                       desc="addition")
    exact = tasks.exact_fraction(tasks.predict(model, pairs[0]), pairs[1])  # (K,)
    test = tasks.addition_task(*tasks.random_addends(args.test_count, args.test_bits, rng),
                               args.test_bits)
    exact_long = tasks.exact_fraction(tasks.predict(model, test[0]), test[1])  # (K,)
    needed = [int(f) if f >= 0 else None for f in first]
    with writer.as_default():
        tf.summary.text("samples_needed", ", ".join(map(str, needed)), step=fit["steps"],
                        description=summaries.describe("samples_needed"))
        for bits, share in ((args.bits, exact), (args.test_bits, exact_long)):
            tf.summary.scalar(f"exact/{bits}bit_min", share.min(), step=fit["steps"],
                              description=summaries.describe(f"exact/{bits}bit_min"))
    writer.flush()
    if args.plot:
        _plot(args, history, needed)
    model.save(workdir.path / "model.keras")  # all K seeds; keras.saving.load_model reads it
    print(f"samples needed per seed: {needed}", file=sys.stderr)
    return {"samples_needed": None if None in needed else max(needed),
            "exact_8bit": float(exact.min()), "exact_32bit": float(exact_long.min()),
            "seeds": args.seeds, "converged": int((first >= 0).sum()),
            "samples_needed_each": needed, "samples_trained": fit["steps"],
            "bits": args.bits, "test_bits": args.test_bits, "loss": args.loss,
            "bias": not args.no_bias, "plot": args.plot,
            "train_loss": fit["loss"], "workdir": str(workdir.path)}


def _plot(args, history, needed):
    from tf_rnn.inspect import plots

    samples = np.array([s for s, _, _ in history])
    losses, exact = (np.stack([h[i] for h in history], 1) for i in (1, 2))  # (K, N) each
    labels = [f"seed {k}: " + (f"exact after {n} samples" if n is not None else
                               "never all exact") for k, n in enumerate(needed)]
    pairs = 2 ** (args.bits - 1)
    plots.addition_figure(
        args.plot, samples, dict(zip(labels, losses)), dict(zip(labels, exact)),
        dict(zip(labels, needed)), title=(
            f"S6 binary addition (--seed {args.seed}): {args.seeds} networks of "
            f"{args.hidden} sigmoid units, SGD {args.lr:g}, {args.loss} loss"
            f"{', no biases' if args.no_bias else ''}; checked every {args.check_every} "
            f"samples on all {pairs} x {pairs} {args.bits}-bit additions"))


def main(argv=None):
    args = parse_args(argv)
    return cli.run_and_report(run, args, prog="experiments.binary_addition")


if __name__ == "__main__":
    sys.exit(main())
