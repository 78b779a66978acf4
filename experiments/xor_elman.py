"""S1: the Elman network of the temporal-XOR seed, trained full-batch with true BPTT.

1 input bit, 4 sigmoid hidden units with context units, 1 sigmoid output, cross-entropy
with the first output ignored, trained by gradient descent with momentum (what the
seed's author tried, with a one-step gradient, before giving up on it) on 64 random
streams of 20 bits; K seeds train side by side and each is tested on a fresh random
stream of 1000 bits. Then the seed's look at why this is hard to train: the cost
along each context weight, the others held at their trained values, of a few of the
trained networks (--sweep-seeds; by default the first that converged and the first
that did not, if any): TensorBoard sweep/seed_K/W_hh_i_j against sweep/offset, also
WORKDIR/sweep.csv; with the `plot` extra, --plot FILE.png draws one panel per weight
and one curve per swept seed. Then the diagnostics of the trained networks on the
training streams (tf_rnn.inspect.diagnostics: TensorBoard diag/..., the JSON's "diag").

    python -m experiments.xor_elman [--seeds 20] [--workdir DIR] [--steps N] [--seed S]
                                    [--sweep-seeds 0,3] [--plot FILE.png]
"""

import sys

import numpy as np

from experiments import _run
from tf_rnn import cli
from tf_rnn.cli import arguments


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.xor_elman",
                                 description=__doc__.splitlines()[0])
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
    p.add_argument("--sweep-seeds", metavar="K,K",
                   help="the seeds (0..--seeds-1) whose cost is swept and plotted "
                        "(default: the first that converged and the first that did not)")
    _run.add_toy_arguments(p, "xor_elman")
    p.add_argument("--plot", metavar="FILE.png", type=arguments.output_path,
                   help="draw the cost along each context weight (the `plot` extra)")
    args = p.parse_args(argv)
    if args.sweep_seeds is not None:
        try:
            args.sweep_seeds = [int(k) for k in args.sweep_seeds.split(",")]
        except ValueError:
            p.error(f"argument --sweep-seeds: expected comma-separated integers, got "
                    f"{args.sweep_seeds!r}")
        bad = [k for k in args.sweep_seeds if not 0 <= k < args.seeds]
        if bad:
            p.error(f"argument --sweep-seeds: expected seeds in [0, {args.seeds}), got "
                    f"{bad}")
    return args


def sweep_seeds(converged):
    """The seeds swept by default: the first that converged and the first that did not
    (what set them apart), or the first seed when all did the same."""
    converged = np.asarray(converged)
    picks = [int(np.argmax(converged == c)) for c in (True, False) if (converged == c).any()]
    return picks or [0]


def run(args):
    settings = _run.toy_settings(args, "xor_elman")
    import keras
    import tensorflow as tf

    from tf_rnn.engine import steps, summaries
    from tf_rnn.inspect import diagnostics, plots, probes
    from tf_rnn.run.directory import Workdir
    from tf_rnn.toys import sequence, tasks

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
    diag = probes.make_measure(model, loss_fn)(inputs, targets,
                                                    model.zero_state(len(inputs)))
    pending = summaries.PendingSummaries()
    diagnostics.write(pending, diag, model, fit["steps"])
    pending.write(writer)

    test = tasks.xor_task(tasks.random_bits(1, args.test_length, rng))
    accuracy = tasks.bit_accuracy(tasks.predict(model, test[0]), test[1], test[2])  # (K,)
    converged = accuracy == 1.0

    # The seed's picture: the cost along each context weight W_hh[i, j] of a few
    # seeds (context unit i -> hidden unit j), swept by an offset from its trained value.
    picks = args.sweep_seeds or sweep_seeds(converged)
    offsets = np.linspace(-args.sweep_range, args.sweep_range, args.sweep_points)
    sweeps, minima = {}, {}
    for k in picks:
        member = model.member(k)
        for i, j in np.ndindex(args.hidden, args.hidden):
            trained = float(member.cell.W_hh[i, j])
            costs = tasks.sweep_weight(member, member.cell.W_hh, (i, j), trained + offsets,
                                       inputs, targets, loss_fn)
            name = f"seed_{k}/W_hh_{i}_{j}"
            sweeps.setdefault(k, {})[(i, j)], minima[name] = costs, tasks.local_minima(costs)
    curves = {f"seed_{k}/W_hh_{i}_{j}": c for k in sweeps for (i, j), c in sweeps[k].items()}
    with writer.as_default():
        for step, offset in enumerate(offsets):
            tf.summary.scalar("sweep/offset", offset, step=step,
                              description=summaries.describe("sweep/offset"))
            for name, costs in curves.items():
                tf.summary.scalar(f"sweep/{name}", costs[step], step=step,
                                  description=summaries.describe(f"sweep/{name}"))
        tf.summary.text("sweep/about", (
            f"Cost (cross-entropy on the training streams) of seeds {picks} along each "
            f"context weight W_hh[i, j] (context unit i -> hidden unit j), moved by an "
            f"offset from {offsets[0]:g} to {offsets[-1]:g} in {len(offsets)} points "
            f"(step s is sweep/offset[s]), every other weight at its trained value. Local "
            f"minima: {minima}."), step=0, description=summaries.describe("sweep/about"))
        tf.summary.text("test/accuracy", ", ".join(f"{a:.4f}" for a in accuracy), step=0,
                        description=summaries.describe("test/accuracy"))
    writer.flush()
    model.save(workdir.path / "model.keras")  # all K seeds; keras.saving.load_model reads it
    np.savetxt(workdir.path / "sweep.csv", np.stack([offsets, *curves.values()], 1),
               delimiter=",", header=",".join(["offset", *curves]), comments="")
    if args.plot:
        plots.sweep_figure(args.plot, offsets, {
            f"seed {k}: {'converged' if converged[k] else 'did not converge'} "
            f"({accuracy[k]:.0%} of the test bits right)": sweeps[k] for k in picks},
            title=sweep_title(args, converged, picks))
    print(f"converged {int(converged.sum())}/{args.seeds}; test accuracy per seed: "
          f"{np.round(accuracy, 4).tolist()}", file=sys.stderr)
    return {"seeds": args.seeds, "converged": int(converged.sum()),
            "accuracy_min": float(accuracy.min()), "accuracy_mean": float(accuracy.mean()),
            "steps": fit["steps"], "train_loss": fit["loss"],
            "sweep": {"seeds": picks, "weights": len(curves),
                      "with_local_minima": sum(m > 0 for m in minima.values()),
                      "cost_max": float(max(c.max() for c in curves.values()))},
            "diag": {key: diag[key] for key in ("grad_ratio", "grad_ratio_last",
                                                 "saturated_fraction", "stuck_fraction",
                                                 "sigma_max", "spectral_radius")},
            "plot": args.plot, "workdir": str(workdir.path)}


def sweep_title(args, converged, picks):
    """The picture's title: the run's own arguments and which seeds it shows, and why."""
    why = "as asked (--sweep-seeds)" if args.sweep_seeds else (
        "the first converged and the first that did not" if len(picks) > 1 else
        "the first seed; all " + ("converged" if converged.all() else "failed"))
    data = "the seed's 5 bits" if args.seed_stream else \
        f"{args.streams} random streams of {args.length} bits"
    return (f"Temporal XOR (--seed {args.seed}): {args.seeds} networks of {args.hidden} "
            f"hidden units, {args.steps} steps on {data}; "
            f"{int(converged.sum())}/{args.seeds} converged\n"
            f"Cost along each context weight W_hh[i, j], the others at their trained "
            f"values: seeds {', '.join(map(str, picks))} ({why})")


def main(argv=None):
    args = parse_args(argv)
    return cli.run_and_report(run, args, prog="experiments.xor_elman")


if __name__ == "__main__":
    sys.exit(main())
