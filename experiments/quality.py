"""The best bits per character per CPU-minute: tf_rnn's Arch 1 combinations against the
Keras and PyTorch peers, trained in turns for the same wall-clock budget on one corpus.

    python -m experiments.quality --data FILE [--minutes 3] [--points 6]
        [--logdir runs/quality] [--plot curves.png] [--contenders a,b,...]
        [--keras-schedule cooldown] [--add NAME=PRESET,KEY=VALUE...]

Contenders (`experiments._quality`): the faithful `text8_arch1`, the best setting found
for each Arch 1 combination (concat, sum, and `text8_best`, multiplicative
integration), the presets of the 3-, 10- and 30-minute budgets, Keras's `SimpleRNNCell`
(relu) at widths 200 and 400, `LSTMCell(256)` and `GRUCell(256)` (models of tf_rnn's
table, trained by its loop: the presets of their names), `gpt_baby`, nanoGPT's baby GPT
in Keras (`experiments._transformer`), and `gpt_torch`, the same recipe in PyTorch,
nanoGPT's own framework (`experiments._nanogpt`, in a child process; left out of the
default list, with a note, where PyTorch is not installed: the `bench` extra). tf_rnn's
contenders and the Keras peers are trained by `tf-rnn train
--minutes`'s own loop, each in a run of its own (LOGDIR/NAME/run, a new directory), and
scored by `tf-rnn eval --split valid`: the two commands, printed in its row
(`command`) and at the end, reproduce it alone. Every learning rate follows the fraction
of its budget spent, so every schedule ends at the budget's end (`tf_rnn.train.budget`); a
contender's clock runs in its turns only and counts its validations too. A transformer's
validation BPC is measured at `--points` moments of its own clock, the last at its end;
a run's curve is its validations (every `eval_every` steps). The
curves go to TensorBoard (one run per contender under `--logdir`, scalar `valid/bpc`
with the training seconds as the step, so `tensorboard --logdir` overlays them, and the
contender's settings in the HParams dashboard) and, with `--plot` and the `plot` extra
(matplotlib), to a PNG.
stdout: one JSON line per contender, then `{"summary": {...}}` (the best tf_rnn
contender against the best peer); progress on stderr.
"""

import os
import sys

from experiments import _quality
from experiments._report import Report, round_figures
from tf_rnn import cli
from tf_rnn.base.errors import UserError
from tf_rnn.cli import arguments


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.quality",
                                description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--data", required=True, help="corpus (text8 format, or normalised)")
    p.add_argument("--minutes", type=float, default=3.0,
                   help="training minutes per contender (default 3)")
    p.add_argument("--points", type=int, default=6,
                   help="validation measurements along each transformer's curve (default "
                   "6; a tf_rnn run, the Keras peers' included, validates as its run does)")
    p.add_argument("--logdir", default=os.path.join("runs", "quality"),
                   help="TensorBoard runs, one per contender (default runs/quality)")
    p.add_argument("--plot", type=arguments.output_path,
                   help="write the learning curves to this PNG (needs the "
                   "`plot` extra: pip install -e \".[plot]\")")
    known = _quality.KNOWN
    p.add_argument("--contenders", help=f"comma-separated subset of {','.join(known)} "
                   f"(default: all; {','.join(_quality.TORCH_CONTENDERS)} where PyTorch "
                   "is installed)")
    p.add_argument("--keras-schedule", choices=_quality.KERAS_SCHEDULES, default="cooldown",
                   help="the Keras RNN peers' learning-rate shape over the budget "
                   "(default cooldown)")
    p.add_argument("--add", action="append", default=[], metavar="NAME=PRESET[,KEY=VALUE...]",
                   help="one more contender: a preset with --set-style overrides, e.g. "
                   "mul256=text8_best,num_nodes=256, or a Keras peer's, e.g. "
                   "lstm1e3=keras_lstm_256,learning_rate=1e-3 (a peer still; repeatable; "
                   "for sweeps)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.points <= 0:
        p.error(f"--minutes and --points must be positive, got {args.minutes}, "
                f"{args.points}")
    if args.contenders is None:  # all, PyTorch's where it is installed
        args.contenders = _quality.default_contenders(
            lambda line: print(line, file=sys.stderr, flush=True))
    else:
        args.contenders = [c for c in args.contenders.split(",") if c]
    unknown = sorted(set(args.contenders) - set(known))
    if unknown:
        p.error(f"--contenders must name known contenders ({', '.join(known)}); got "
                f"unknown {unknown}")
    try:
        _quality.require_torch(args.contenders)
    except UserError as e:
        p.error(str(e))
    args.added = {}
    for item in args.add:
        name, _, spec = item.partition("=")
        base, *assignments = spec.split(",")
        try:
            changes = _quality.parse_added(base, assignments)
        except UserError as e:
            p.error(f"--add {item!r}: {e}")
        if not name or name in known or name in args.added:
            p.error(f"--add {item!r}: give a new contender name before '='")
        args.added[name] = (base, changes)  # parsed, checked
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (checked before an hour of training, not after)
        except ImportError:
            p.error("--plot needs matplotlib, the `plot` extra: pip install -e \".[plot]\"")
    if not os.path.isfile(args.data):
        p.error(f"--data {args.data!r} is not a file")
    return args


def plot_curves(contenders, path, title):
    """valid BPC against training minutes, one line per contender, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for c in contenders:
        minutes = [s / 60 for s, _, _ in c.curve]
        ax.plot(minutes, [b for _, _, b in c.curve], marker="o", markersize=3,
                linestyle="--" if c.name in _quality.PEERS else "-", label=c.name)
    ax.set_xlabel("training time (minutes, this machine)")
    ax.set_ylabel("validation bits per character")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def hparams_runs(contenders, logdir, minutes):
    """{name: summary writer}: one TensorBoard run per contender under `logdir`, its
    settings (`Contender.hparams` and the minutes) in the HParams dashboard, whose
    metric is the `valid/bpc` scalar the curve writes."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    settings = {c.name: {**c.hparams, "minutes": float(minutes)} for c in contenders}
    names = sorted({k for s in settings.values() for k in s})
    with tf.summary.create_file_writer(logdir).as_default():  # the dashboard's columns
        hp.hparams_config(hparams=[hp.HParam(k) for k in names],
                          metrics=[hp.Metric("valid/bpc", display_name="valid BPC")])
    writers = {}
    for c in contenders:
        writers[c.name] = tf.summary.create_file_writer(os.path.join(logdir, c.name))
        with writers[c.name].as_default():
            hp.hparams(settings[c.name], trial_id=c.name)
    return writers


def run(args):
    """Trains the contenders; returns the summary line ({"summary": {...}})."""
    import tensorflow as tf

    from tf_rnn import data

    report = Report()
    corpus = data.load_corpus(args.data, vocab="text8")
    runs = [n for n in args.contenders if n in _quality.TF_RNN_CONTENDERS
            or n in _quality.KERAS_CONTENDERS] + list(args.added)
    _quality.check_new_runs(runs, args.logdir)
    where = {"data": args.data, "logdir": args.logdir, "minutes": args.minutes}
    contenders = _quality.make_contenders(args.contenders, corpus.vocab.size,
                                          args.keras_schedule, **where)
    for name, (base, changes) in args.added.items():
        contenders.append(_quality.added_contender(name, base, changes, corpus.vocab.size,
                                                   args.keras_schedule, **where))
    writers = hparams_runs(contenders, args.logdir, args.minutes)

    def on_point(c):
        seconds, steps, bpc = c.curve[-1]
        with writers[c.name].as_default():
            tf.summary.scalar("valid/bpc", bpc, step=round(seconds))
            tf.summary.scalar("train/steps", steps, step=round(seconds))
        writers[c.name].flush()
        report.log(f"  {c.name}: {seconds / 60:.2f} min, {steps} steps, valid {bpc:.4f} BPC")

    report.log(f"Quality: {args.minutes:g} min of training each on {corpus.source} "
               f"({len(corpus.train):,} training characters), validation BPC "
               f"{args.points} times along the way:")
    bpc = _quality.train_for(contenders, corpus.train, corpus.valid, 60 * args.minutes,
                             report.log, args.points, on_point)
    for c in contenders:
        command = {"command": c.command} if c.command else {}
        report.add(f"quality/{c.name}", c.chars_per_sec, valid_bpc=bpc[c.name],
                   steps=c.steps, train_seconds=c.seconds,
                   schedule_fraction=round(c.schedule_fraction, 4),  # 1: ended
                   curve=[[round(s, 1), n, round(b, 4)] for s, n, b in c.curve], **command)
    summary = {"corpus": os.path.basename(args.data),
               **_quality.summary(bpc, args.minutes, _quality.peer_names(args.added))}
    summary["keras_schedule"] = args.keras_schedule
    if args.plot:
        plot_curves(contenders, args.plot,
                    f"{os.path.basename(args.data)}, {args.minutes:g} min per model")
        report.log(f"Learning curves: {args.plot}")
    report.log("\n" + report.table())
    report.log("Each tf_rnn row alone, as a user runs it (its figure within the noise of "
               "the machine's pace):\n" + "\n".join(f"  {c.name}: {c.command}"
                                                    for c in contenders if c.command))
    return {"summary": round_figures(summary)}


def main(argv=None):
    return cli.run_and_report(run, parse_args(argv), prog="experiments.quality")


if __name__ == "__main__":
    sys.exit(main())
