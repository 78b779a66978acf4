"""S1: the Elman network of the temporal-XOR seed, trained full-batch with true BPTT.

1 input bit, 4 sigmoid hidden units with context units, 1 sigmoid output, cross-entropy
with the first output ignored, trained by gradient descent with momentum (what the
seed's author tried, with a one-step gradient, before giving up on it) on 64 random
streams of 20 bits; K seeds train side by side and each is tested on a fresh random
stream of 1000 bits. Then the seed's look at why this is hard to train: the cost
along each context weight, the others held at their trained values (TensorBoard:
sweep/W_hh_i_j against sweep/offset; also WORKDIR/sweep.csv; with the `plot` extra,
--plot FILE.png draws those curves), and the diagnostics of the trained networks on
the training streams (tf_rnn.diagnostics: TensorBoard diag/..., the JSON's "diag").

    python -m experiments.xor_elman [--seeds 20] [--workdir DIR] [--steps N] [--seed S]
                                    [--plot FILE.png]
"""

import argparse
import sys

import numpy as np

from experiments import _run
from tf_rnn import cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20, help="independent runs (K members)")
    p.add_argument("--seed", type=int, default=0, help="base random seed")
    p.add_argument("--hidden", type=int, default=4, help="hidden (= context) units")
    p.add_argument("--steps", type=int, default=1500, help="full-batch updates")
    p.add_argument("--lr", type=float, default=0.5, help="gradient-descent learning rate")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--streams", type=int, default=64, help="training bit streams")
    p.add_argument("--length", type=int, default=20, help="bits per training stream")
    p.add_argument("--seed-stream", action="store_true",
                   help="train on the seed's 5 bits 0 0 1 1 0 only (fits, does not generalise)")
    p.add_argument("--test-length", type=int, default=1000, help="bits of the test stream")
    p.add_argument("--sweep-range", type=float, default=10.0, help="± around the trained value")
    p.add_argument("--sweep-points", type=int, default=200)
    _run.add_toy_arguments(p, "xor_elman")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the cost along each context weight (the `plot` extra)")
    return p.parse_args(argv)


def run(args):
    settings = _run.toy_settings(args, "xor_elman")
    import keras
    import tensorflow as tf

    from tf_rnn import diagnostics, plots, sequence, steps, summaries, tasks
    from tf_rnn.workdir import Workdir

    if args.plot:
        plots.require_matplotlib()  # a missing extra fails before training

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    bits = (np.array(tasks.SEED_XOR_BITS) if args.seed_stream
            else tasks.random_bits(args.streams, args.length, rng))
    inputs, targets, mask = tasks.xor_task(bits)  # (B, T, 1), (B, T, 1), (T,)
    model = sequence.ElmanSequenceModel(1, args.hidden, 1, "sigmoid", members=args.seeds)
    loss_fn = sequence.make_loss("bce", mask)
    optimizer = keras.optimizers.SGD(args.lr, momentum=args.momentum)
    train_step = steps.make_train_step(model, optimizer, loss_fn=loss_fn, **settings)
    workdir = Workdir(args.workdir).create()
    writer = tf.summary.create_file_writer(str(workdir.events_dir))
    fit = sequence.fit(model, train_step, (inputs, targets), args.steps, writer=writer,
                       progress=not args.no_progress, desc="xor")

    # Why it learned or not: gradient flow, saturation and spectrum of all K members.
    diag = diagnostics.make_measure(model, loss_fn)(inputs, targets,
                                                    model.zero_state(len(inputs)))
    pending = summaries.PendingSummaries()
    diagnostics.write(pending, diag, model, fit["steps"])
    pending.write(writer)

    test = tasks.xor_task(tasks.random_bits(1, args.test_length, rng))
    accuracy = tasks.bit_accuracy(tasks.predict(model, test[0]), test[1], test[2])  # (K,)
    converged = accuracy == 1.0

    # The seed's picture: the cost along each context weight W_hh[i, j] of one seed
    # (context unit i -> hidden unit j), swept by an offset from its trained value.
    k = int(np.argmax(converged))
    member = model.member(k)
    offsets = np.linspace(-args.sweep_range, args.sweep_range, args.sweep_points)
    curves, minima = {}, {}
    for i, j in np.ndindex(args.hidden, args.hidden):
        trained = float(member.cell.W_hh[i, j])
        costs = tasks.sweep_weight(member, member.cell.W_hh, (i, j), trained + offsets,
                                   inputs, targets, loss_fn)
        curves[f"W_hh_{i}_{j}"], minima[f"W_hh_{i}_{j}"] = costs, tasks.local_minima(costs)
    with writer.as_default():
        for step, offset in enumerate(offsets):
            tf.summary.scalar("sweep/offset", offset, step=step)
            for name, costs in curves.items():
                tf.summary.scalar(f"sweep/{name}", costs[step], step=step)
        tf.summary.text("sweep/about", (
            f"Cost (cross-entropy on the training streams) of seed {k} along each context "
            f"weight W_hh[i, j] (context unit i -> hidden unit j), moved by an offset "
            f"from {offsets[0]:g} to {offsets[-1]:g} in {len(offsets)} points (step s is "
            f"sweep/offset[s]), every other weight at its trained value. Local minima: "
            f"{minima}."), step=0)
        tf.summary.text("test/accuracy", ", ".join(f"{a:.4f}" for a in accuracy), step=0)
    writer.flush()
    model.save(workdir.path / "model.keras")  # all K seeds; keras.saving.load_model reads it
    np.savetxt(workdir.path / "sweep.csv", np.stack([offsets, *curves.values()], 1),
               delimiter=",", header=",".join(["offset", *curves]), comments="")
    if args.plot:
        plots.curves_figure(
            args.plot, offsets, curves, "offset from the trained value",
            "cost (cross-entropy on the training streams)",
            title=f"Temporal XOR, seed {k}: cost along each context weight W_hh[i, j]",
            marks={"trained weights": 0.0})
    print(f"converged {int(converged.sum())}/{args.seeds}; test accuracy per seed: "
          f"{np.round(accuracy, 4).tolist()}", file=sys.stderr)
    return {"seeds": args.seeds, "converged": int(converged.sum()),
            "accuracy_min": float(accuracy.min()), "accuracy_mean": float(accuracy.mean()),
            "steps": fit["steps"], "train_loss": fit["loss"],
            "sweep": {"seed": k, "weights": len(curves),
                      "with_local_minima": sum(m > 0 for m in minima.values()),
                      "cost_max": float(max(c.max() for c in curves.values()))},
            "diag": {key: diag[key] for key in ("grad_ratio", "grad_ratio_last",
                                                 "saturated_fraction", "stuck_fraction",
                                                 "sigma_max", "spectral_radius")},
            "plot": args.plot, "workdir": str(workdir.path)}


def main(argv=None):
    args = parse_args(argv)
    return cli.run_and_report(run, args, prog="experiments.xor_elman")


if __name__ == "__main__":
    sys.exit(main())
