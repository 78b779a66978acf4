"""Quality per CPU-minute: validation bits per character after equal wall-clock budgets.

The contenders train in turns, a slice of seconds each, until each has spent the same
budget on its own clock (its compile included); taking turns keeps a machine shared
with other work from favouring whichever ran first. tf_rnn's contenders are trained by
`tf-rnn train --minutes`'s own loop, each in a run directory of its own, and scored by
`tf-rnn eval --split valid`, the two commands printed beside each row
(`_contenders.RunContender`). So are the Keras RNN peers: Keras's own cells, models of
tf_rnn's table trained by the same loop (the presets `keras_gru_256`, ...), so that every
recurrent contender is trained by one loop and scored by one evaluation. The
transformers' clocks count what that loop's would: their steps, windows and validations
(`_contenders.Contender`; PyTorch's GPT in a child process,
`_contenders.ChildContender`). A run's curve is its validations (every `eval_every`
steps); a transformer's is measured at `points - 1` moments of its clock and at its end. Every recurrent contender is
scored over the whole validation split the same way: the split cut into 32 streams, each
carrying its state from the zero state across windows; the transformers score the same
characters, each with at least half its context window before it
(`_windows.window_plan`).

Each contender's learning rate follows the fraction of its budget spent (its
`TimeBudget` sets `progress` before each step): the runs' `schedule` field (the Keras
peers' set by `--keras-schedule`), the transformers' warm-up + cosine all end at the budget's end,
whatever the contender's pace and however busy the machine."""

import math
import os

from experiments._contenders import NEEDS_TORCH, ChildContender, Contender, RunContender
from experiments._contenders import has_torch, new_progress
from tf_rnn.base.errors import ArgumentError, UserError

SLICE_SECONDS = 5.0  # one turn of a contender

# The tf_rnn contenders: a preset, with a few overrides. The best setting found for each
# of Arch 1's combinations (docs/quality.md lists the sweeps behind them), on the
# budget's constant-then-cooldown schedule; the seed's keeps its staircase.
BUDGET = {"schedule": "cooldown"}
TF_RNN_CONTENDERS = {
    "text8_arch1": ("text8_arch1", {"jit_compile": True}),  # the seed's settings
    "arch1_concat_best": ("text8_arch1_tuned", BUDGET),
    "arch1_sum_best": ("text8_best", {"combine": "sum", "activation": "relu", "num_nodes": 256,
                                      "init": "irnn", "init_gain": 0.5, **BUDGET}),
    "text8_best": ("text8_best", BUDGET),  # multiplicative integration
    "text8_best_3min": ("text8_best_3min", {}),  # two layers of it; cooldown already
    "text8_best_10min": ("text8_best_10min", {}),  # two wider layers, more dropout
    "text8_best_30min": ("text8_best_30min", {}),  # the same model over 30 minutes
}

# The Keras peers a user would try: Keras's own cells through tf_rnn's loop, each the
# preset of its name (`tf_rnn.base.config`: Adam at the rate that suits it, clip 1.25, batch
# 32, unroll 40, the budget's cooldown).
KERAS_CONTENDERS = ("keras_simplernn_200", "keras_simplernn_400", "keras_lstm_256",
                    "keras_gru_256")
# The Keras peers' learning-rate shape over the budget (`--keras-schedule`), as the
# config fields that give it ("constant": the step schedule that never decays).
KERAS_SCHEDULES = {"constant": {"schedule": "step", "decay_rate": 1.0},
                   "linear": {"schedule": "linear"}, "cooldown": {"schedule": "cooldown"}}

# The transformer peers, nanoGPT's baby-GPT recipe: (framework, overrides) of the Keras
# one (`_transformer.GPTTrainer`, this process) or of PyTorch's, nanoGPT's own framework
# (`_windows.Recipe`'s fields; `_nanogpt` in a child process, where PyTorch is installed).
GPT_CONTENDERS = {"gpt_baby": ("keras", {}), "gpt_torch": ("pytorch", {})}
TORCH_CONTENDERS = [name for name, (framework, _) in GPT_CONTENDERS.items()
                    if framework == "pytorch"]

KNOWN = [*TF_RNN_CONTENDERS, *KERAS_CONTENDERS, *GPT_CONTENDERS]
PEERS = frozenset([*KERAS_CONTENDERS, *GPT_CONTENDERS])  # everything not tf_rnn's


def schedule_changes(kind):
    """The config fields of the Keras peers' schedule `kind` (`KERAS_SCHEDULES`)."""
    if kind not in KERAS_SCHEDULES:
        raise ArgumentError(f"Received an invalid value for `keras_schedule`, expected one "
                            f"of {list(KERAS_SCHEDULES)}, got {kind!r}.")
    return KERAS_SCHEDULES[kind]


def gpt_contender(name, changes, alphabet):
    from experiments import _transformer

    progress = new_progress()
    gpt = _transformer.GPTTrainer(alphabet, progress, **changes)
    B, T = gpt.batch_size, gpt.context
    hparams = {"width": gpt.model.width, "layers": gpt.model.num_layers,
               "lr": gpt.learning_rate, "schedule": "warmup_cosine", "unroll_or_context": T}
    return Contender(name, gpt.train, gpt.evaluate, B, T, gpt, progress,
                     windows=lambda ids: _transformer.RandomWindows(ids, B, T, gpt.seed),
                     hparams=hparams)


def torch_contender(name, changes, alphabet):
    """nanoGPT's recipe with `changes` in PyTorch, trained in a child process."""
    from experiments import _windows

    r = _windows.Recipe.with_changes(changes)
    hparams = {"width": r.n_embd, "layers": r.n_layer, "lr": r.learning_rate,
               "schedule": "warmup_cosine", "unroll_or_context": r.block_size}
    job = {"settings": dict(changes), "seed": 0, "threads": 0}
    return ChildContender(name, job, alphabet, r.batch_size, r.block_size, hparams)


def default_contenders(note):
    """KNOWN, less the PyTorch ones where PyTorch is not installed (`note(line)` says so)."""
    if has_torch():
        return list(KNOWN)
    note(f"Leaving out {', '.join(TORCH_CONTENDERS)}: it {NEEDS_TORCH}")
    return [name for name in KNOWN if name not in TORCH_CONTENDERS]


def require_torch(names):
    """UserError if a contender of `names` is PyTorch's and PyTorch is not installed."""
    wanted = [name for name in names if name in TORCH_CONTENDERS]
    if wanted and not has_torch():
        raise UserError(f"{', '.join(wanted)} {NEEDS_TORCH}")


def parse_added(base, assignments):
    """The changes of an `--add` contender: `--set`-style KEY=VALUE overrides of the preset
    `base` (a tf_rnn contender's or a Keras peer's), checked as `--set` checks them.
    UserError for an unknown base, key or value."""
    from tf_rnn.base import config

    cfg = config.with_overrides(config.get_preset(base), assignments)
    return {k: getattr(cfg, k) for k in (a.partition("=")[0].strip() for a in assignments)}


def added_contender(name, base, changes, alphabet, keras_schedule="cooldown", *, data=None,
                    logdir=None, minutes=None):
    """An `--add` contender: the preset `base` with `changes` (`parse_added`'s); a Keras
    peer's on the Keras peers' schedule unless `changes` sets its own."""
    if base in KERAS_CONTENDERS:
        changes = {**schedule_changes(keras_schedule), **changes}
    return tf_rnn_contender(name, base, changes, data, logdir, minutes)


def tf_rnn_contender(name, preset, changes, data, logdir, minutes):
    """`preset` with `changes` as `tf-rnn train --minutes` trains it, in the new run
    directory LOGDIR/NAME/run (`run_dir`); a change the preset already has is left out
    of its command."""
    from tf_rnn.base import config

    own = config.get_preset(preset)
    changes = {k: v for k, v in changes.items() if getattr(own, k) != v}
    return RunContender(name, preset, changes, data, run_dir(logdir, name), minutes)


def run_dir(logdir, name):
    """Where a tf_rnn contender's run lives: beside its TensorBoard run LOGDIR/NAME."""
    return os.path.join(logdir, name, "run")


def check_new_runs(names, logdir):
    """Refuses a `logdir` that holds a tf_rnn contender's run already (a quality run
    does not resume one): ArgumentError, before anything is trained or written."""
    from tf_rnn.run.directory import Workdir

    taken = [n for n in names if Workdir(run_dir(logdir, n)).path.exists()]
    if taken:
        raise ArgumentError(f"--logdir {logdir!r} holds runs of an earlier quality run "
                            f"({', '.join(run_dir(logdir, n) for n in taken)}): give "
                            f"another --logdir, or remove them; nothing was changed.")


def peer_names(added):
    """The peers of a run with the `--add` contenders `added` ({name: (base, changes)}):
    every contender not tf_rnn's, a peer's variant included."""
    return PEERS | {name for name, (base, _) in added.items() if base in PEERS}


def make_contenders(names, alphabet, keras_schedule="cooldown", *, data=None, logdir=None,
                    minutes=None):
    """The contenders `names`; tf_rnn's train on the corpus at `data` for `minutes`, in
    runs under `logdir` (`tf_rnn_contender`)."""
    contenders = []
    for name in names:
        if name in TF_RNN_CONTENDERS:
            preset, changes = TF_RNN_CONTENDERS[name]
            contenders.append(tf_rnn_contender(name, preset, changes, data, logdir,
                                               minutes))
        elif name in KERAS_CONTENDERS:
            contenders.append(tf_rnn_contender(name, name, schedule_changes(keras_schedule),
                                               data, logdir, minutes))
        elif name in GPT_CONTENDERS:
            framework, changes = GPT_CONTENDERS[name]
            make = torch_contender if framework == "pytorch" else gpt_contender
            contenders.append(make(name, changes, alphabet))
        else:
            raise ArgumentError(f"Unknown contender {name!r}; known: {sorted(KNOWN)}.")
    return contenders


def train_for(contenders, corpus_ids, valid_ids, seconds, log, points=1, on_point=None):
    """Trains every contender for `seconds` of its own clock, in turns; returns
    {name: its validation BPC at its end}.

    Its budget ends its schedule and its training, as `tf-rnn train --minutes` ends
    them (`tf_rnn.train.budget`). A peer is validated when its clock passes each of
    `points - 1` equally spaced moments and at its end; a tf_rnn contender as its
    run validates. `on_point(contender)` is called after each validation. Every
    contender is closed at the end, or when one fails (a child process let go).
    """
    try:
        for c in contenders:
            c.begin(corpus_ids, valid_ids, seconds, points, on_point)
        while not all(c.ended for c in contenders):
            for c in contenders:
                if not c.ended:
                    c.turn(SLICE_SECONDS)
            log("  " + ", ".join(f"{c.name} {c.seconds:.0f} s {c.steps} steps "
                                 f"({c.schedule_fraction:.0%} of the schedule) loss "
                                 f"{c.last_loss:.3f}" for c in contenders))
        return {c.name: c.finish() for c in contenders}
    finally:
        for c in contenders:
            c.close()


def run(report, args):
    """`experiments.benchmark --quality`: one `quality/...` row per contender, trained
    on `args.data` (None: text8) for `args.minutes` in runs of a temporary directory;
    returns the summary's quality figures."""
    import tempfile

    from tf_rnn import data

    corpus = data.load_corpus(args.data, vocab="text8")
    with tempfile.TemporaryDirectory(prefix="tf_rnn_quality_") as logdir:
        contenders = make_contenders(default_contenders(report.log), corpus.vocab.size,
                                     data=args.data, logdir=logdir, minutes=args.minutes)
        report.log(f"Quality: {args.minutes:g} min of training each on {corpus.source} "
                   f"({len(corpus.train):,} training characters), then validation BPC:")
        bpc = train_for(contenders, corpus.train, corpus.valid, 60 * args.minutes,
                        report.log)
    for c in contenders:
        report.add(f"quality/{c.name}", c.chars_per_sec, valid_bpc=bpc[c.name],
                   steps=c.steps, train_seconds=c.seconds,
                   schedule_fraction=c.schedule_fraction, valid_chars=len(corpus.valid))
    return summary(bpc, args.minutes)


def summary(bpc, minutes, peers=PEERS):
    """The quality figures of one budget: the best tf_rnn contender against the best
    peer (every contender not tf_rnn's: the Keras RNNs and the transformers).

    Args:
      bpc: {contender name: valid BPC}.
      peers: the names in `bpc` that are peers; the others are tf_rnn's.
    """
    def best(names):
        return min(names, key=bpc.get, default=None)

    ours, peer = best([k for k in bpc if k not in peers]), best([k for k in bpc if k in peers])
    figures = {"quality_minutes": minutes, "best_tf_rnn": ours,
               "best_tf_rnn_valid_bpc": bpc.get(ours, math.nan), "best_peer": peer,
               "best_peer_valid_bpc": bpc.get(peer, math.nan)}
    margin = figures["best_peer_valid_bpc"] - figures["best_tf_rnn_valid_bpc"]
    return {**figures, "margin_over_best_peer": margin,
            "beats_best_peer_by_0_05": bool(margin >= 0.05)}
