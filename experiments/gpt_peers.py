"""The transformer peer checked against nanoGPT itself (issue 37, item 3): nanoGPT's
baby-GPT recipe in PyTorch, its own framework, beside the Keras peer of the quality
comparison, each trained alone for the same minutes on the same split and scored on the
same validation characters.

    python -m experiments.gpt_peers --data FILE --minutes M
        [--contenders torch_baby,keras_baby,torch_wide,keras_wide] [--vocab text8|corpus]
        [--split 90/5/5] [--windows N] [--window-length L] [--set KEY=VALUE ...]
        [--threads N] [--seed 0]

Contenders, one after the other (never two at once, so neither slows the other):
`torch_baby`, nanoGPT's CPU recipe for shakespeare_char in PyTorch (`_nanogpt`, in a
child process: the package never imports PyTorch; the `bench` extra installs it);
`keras_baby`, the same recipe in Keras (`_transformer.GPTTrainer`, quality's `gpt_baby`),
trained in this process; `torch_wide` and `keras_wide`, the variant a user would try
next (`WIDE`). Both frameworks draw the same batches, run the same budget loop and score
the same windows (`_windows`): the validation characters every quality contender scores
(bits per character), and with --windows nanoGPT's `estimate_loss` (nats over every
position of random windows). `--set` changes a recipe field (`_windows.Recipe`, nanoGPT's
names) of every contender. Known differences of the Keras peer from nanoGPT: no weight
decay on the embeddings, no dropout, Adam's epsilon 1e-7 (Keras's) against 1e-8.

stdout: one JSON object, a row per contender and the best; progress on stderr.
"""

import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from experiments import _contenders, _windows
from experiments._contenders import NEEDS_TORCH
from experiments._report import round_figures
from tf_rnn import cli
from tf_rnn.base import config as config_lib
from tf_rnn.base.errors import ConfigError, UserError
from tf_rnn.cli import arguments
from tf_rnn.data import corpora

# What a user would try next on a CPU: nanoGPT's GPU recipe (6 layers of width 384, a
# context of 256) is too slow for a budget of minutes here, so half of it: a wider model
# (192, 6 heads of 32, as the baby's) and twice the context, whose cost per character
# grows with it. Dropout stays 0: in 10 CPU-minutes a model sees a few passes over a
# 1 M-character text at most, too few to overfit, and dropout would only slow it.
WIDE = {"n_embd": 192, "n_head": 6, "block_size": 128}
CONTENDERS = {"torch_baby": ("pytorch", {}), "keras_baby": ("keras", {}),
              "torch_wide": ("pytorch", WIDE), "keras_wide": ("keras", WIDE)}
# `_transformer.GPTTrainer`'s names for the recipe's fields (dropout: none there).
KERAS_NAMES = {"n_layer": "num_layers", "n_head": "heads", "n_embd": "width",
               "block_size": "context", "batch_size": "batch_size",
               "learning_rate": "learning_rate", "min_learning_rate": "min_learning_rate",
               "warmup": "warmup", "weight_decay": "weight_decay"}
LN2 = math.log(2.0)


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.gpt_peers",
                                 description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--data", required=True, help="corpus: a text file, or a name "
                   f"({', '.join(corpora.names())})")
    p.add_argument("--minutes", type=arguments.positive_minutes, default=3.0,
                   help="training minutes of each contender (default 3)")
    p.add_argument("--contenders", default="torch_baby,keras_baby",
                   help=f"comma-separated, of {','.join(CONTENDERS)} (default "
                   "torch_baby,keras_baby)")
    p.add_argument("--vocab", choices=("text8", "corpus"), default="text8",
                   help="text8: ' '+a-z (experiments.quality's) | corpus: its own characters")
    p.add_argument("--split", default="90/5/5", help="train/valid/test percent (default "
                   "90/5/5, experiments.quality's; nanoGPT's shakespeare_char: 90/10/0)")
    p.add_argument("--windows", type=int, default=0, help="> 0: also score this many "
                   "random windows nanoGPT's way (estimate_loss), in nats")
    p.add_argument("--window-length", type=int, default=0,
                   help="characters each window predicts (default: the context)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a recipe field of every contender (nanoGPT's names: "
                   f"{', '.join(f.name for f in dataclasses.fields(_windows.Recipe))})")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of each framework "
                   "(default 0: every core)")
    p.add_argument("--seed", type=int, default=0, help="weights, batches and windows")
    arguments.add_verbose_argument(p)
    args = p.parse_args(argv)
    args.contenders = [c for c in args.contenders.split(",") if c]
    unknown = sorted(set(args.contenders) - set(CONTENDERS))
    if unknown or not args.contenders:
        p.error(f"--contenders must name known contenders ({', '.join(CONTENDERS)}); got "
                f"unknown {unknown}")
    if min(args.windows, args.window_length, args.threads) < 0:
        p.error(f"--windows, --window-length and --threads must not be negative, got "
                f"{args.windows}, {args.window_length}, {args.threads}")
    try:
        settle(args)
    except UserError as e:
        p.error(str(e))
    return args


def settle(args):
    """Adds `fractions` (--split) and `changes` (--set) to `args`, checking everything a
    contender would refuse after another had trained (UserError): the corpus exists,
    each contender's recipe, the window length, PyTorch where asked for."""
    corpora.resolve(args.data)
    args.fractions = config_lib.Config(split=args.split).split_fractions
    args.changes = parse_sets(args.set)
    for name in args.contenders:
        context = recipe(name, args.changes).block_size
        if args.window_length > context:
            raise ConfigError(f"--window-length {args.window_length} exceeds {name}'s "
                              f"context, {context}.")
    require_torch(args.contenders)


def require_torch(names):
    """UserError if a contender of `names` is PyTorch's and PyTorch is not installed."""
    torch_ones = [name for name in names if CONTENDERS[name][0] == "pytorch"]
    if torch_ones and not _contenders.has_torch():
        raise UserError(f"{', '.join(torch_ones)} {NEEDS_TORCH}")


def parse_sets(assignments):
    """{field: value string} of `--set KEY=VALUE`s (checked by `recipe`)."""
    changes = {}
    for item in assignments:
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}.")
        changes[key] = value
    return changes


def recipe(name, changes):
    """The `_windows.Recipe` of contender `name` with the `--set` `changes`."""
    framework, variant = CONTENDERS[name]
    r = _windows.Recipe.with_changes({**variant, **changes})
    if framework == "keras" and r.dropout:
        raise ConfigError(f"{name}: the Keras GPT has no dropout, got dropout={r.dropout}.")
    return r


def train_torch(name, r, corpus, args, log):
    """The PyTorch recipe in a child process (`_nanogpt`); its result dictionary."""
    with tempfile.TemporaryDirectory(prefix="gpt_peers-") as tmp:
        folder = pathlib.Path(tmp)
        np.save(folder / "train.npy", np.asarray(corpus.train, np.int32))
        np.save(folder / "valid.npy", np.asarray(corpus.valid, np.int32))
        job = {"name": name, "train": "train.npy", "valid": "valid.npy",
               "alphabet_size": corpus.vocab.size, "minutes": args.minutes,
               "seed": args.seed, "settings": dataclasses.asdict(r),
               "threads": args.threads, "streams": True, "windows": args.windows,
               "window_length": args.window_length}
        (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")
        child = _contenders.start_child(
            "experiments._nanogpt", ["--job", str(folder / "job.json"),
                                     "--out", str(folder / "result.json")],
            stderr=subprocess.PIPE)
        last = ""
        for line in child.stderr:  # its progress, passed on as it comes
            log(line.rstrip())
            last = line.strip() or last
        if child.wait() != 0:
            raise UserError(f"{name}: the PyTorch child failed (exit {child.returncode}): "
                            f"{last}")
        return json.loads((folder / "result.json").read_text(encoding="utf-8"))


def train_keras(name, r, corpus, args, log):
    """The Keras recipe (`_transformer.GPTTrainer`) in this process, under a
    `TimeBudget` whose fraction its schedule follows; the same result dictionary."""
    import keras
    import tensorflow as tf

    from experiments import _quality, _transformer
    from tf_rnn.train import budget

    progress = _quality.new_progress()
    settings = dataclasses.asdict(r)
    gpt = _transformer.GPTTrainer(
        corpus.vocab.size, progress, seed=args.seed,
        **{KERAS_NAMES[k]: v for k, v in settings.items() if k in KERAS_NAMES})
    windows = _windows.RandomWindows(corpus.train, r.batch_size, r.block_size, args.seed)
    trained = _windows.train_on_budget(budget.TimeBudget(args.minutes, progress),
                                       lambda window, _: gpt.train(window), windows, log, name)
    fraction = trained.pop("fraction")
    result = {**trained, "schedule_fraction": fraction,
              "final_learning_rate": float(gpt.schedule(trained["steps"])),
              "chars_per_sec": trained["steps"] * r.batch_size * r.block_size /
              trained["train_seconds"],
              "parameters": gpt.model.count_params(), "settings": settings,
              "keras_version": keras.__version__, "tensorflow_version": tf.__version__,
              "threads": args.threads or os.cpu_count()}
    bpc = gpt.evaluate(corpus.valid)
    _, _, n = _windows.scoring_windows(len(corpus.valid), r.block_size)
    result.update(valid_nats=bpc * LN2, valid_bpc=bpc, valid_chars=int(n))
    if args.windows:
        length = args.window_length or r.block_size
        nats = gpt.evaluate_windows(corpus.valid, args.windows, length, args.seed)
        result.update(nats_windows=nats, bpc_windows=nats / LN2,
                      windows=args.windows, window_length=length)
    return result


def keras_threads(threads, log):
    """TensorFlow's CPU threads (0: its default, every core); settable only before its
    runtime starts, as in a fresh `python -m experiments.gpt_peers`."""
    import tensorflow as tf

    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # a caller's TensorFlow already running: its threads stay
        log(f"TensorFlow has started already: its threads stay as they are, not {threads}.")


def row(name, result):
    """A contender's JSON row: the scores first, then the run, then its settings."""
    keys = ("valid_bpc", "valid_nats", "bpc_windows", "nats_windows", "steps",
            "chars_per_sec", "schedule_fraction", "final_learning_rate", "first_loss",
            "last_loss", "parameters", "valid_chars", "windows", "window_length", "threads")
    figures = {k: result[k] for k in keys if k in result}
    figures["train_minutes"] = result["train_seconds"] / 60
    versions = {k: v for k, v in result.items() if k.endswith("_version")}
    return {"contender": name, "framework": CONTENDERS[name][0], **round_figures(figures),
            **versions, "settings": result["settings"]}


def run(args):
    """Trains and scores each contender in turn; returns the rows and the best."""
    from tf_rnn import data

    def log(line):
        print(line, file=sys.stderr, flush=True)

    keras_threads(args.threads, log)
    corpus = data.load_corpus(args.data, vocab=args.vocab, fractions=args.fractions)
    log(f"GPT peers: {args.minutes:g} min of training each, alone, on {corpus.source} "
        f"({len(corpus.train):,} training characters), then validation BPC:")
    rows, bpc = [], {}
    for name in args.contenders:
        train = train_torch if CONTENDERS[name][0] == "pytorch" else train_keras
        result = train(name, recipe(name, args.changes), corpus, args, log)
        rows.append(row(name, result))
        bpc[name] = result["valid_bpc"] if math.isfinite(result["valid_bpc"]) else math.inf
        log(f"  {name}: valid BPC {result['valid_bpc']:.4f} after {result['steps']} steps "
            f"({result['chars_per_sec']:,.0f} chars/s)")
    best = min(bpc, key=bpc.get)
    return {"data": corpus.source, "minutes": args.minutes, "vocab": corpus.vocab.size,
            "split": args.split, "train_chars": len(corpus.train),
            "valid_chars": len(corpus.valid), "rows": rows, "best": best,
            **round_figures({"best_valid_bpc": bpc[best]})}


def main(argv=None):
    args = parse_args(argv)
    return cli.run_and_report(run, args, prog="python -m experiments.gpt_peers")


if __name__ == "__main__":
    sys.exit(main())
