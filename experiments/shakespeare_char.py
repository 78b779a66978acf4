"""nanoGPT's shakespeare_char benchmark for a tf_rnn preset, scored nanoGPT's way.

Raw Tiny Shakespeare (the corpus shipped with the package: nanoGPT's input.txt, its 65
characters), the first 90 % for training and the last 10 % as validation, trained for
--minutes (its validation, samples and saves counted in them); then the validation loss
in nats per character two ways: nanoGPT's (`estimate_loss`: random windows of 256
characters, each read from the zero state, the loss averaged over every position) and
streaming (the split cut into streams that carry their state: `tf-rnn eval`'s).

    python -m experiments.shakespeare_char [--preset text8_best_3min] [--minutes 3]
        [--windows 2000] [--workdir DIR]

It is these commands (the JSON line prints them):

    tf-rnn train --preset P --data shakespeare --set vocab=corpus --set split=90/10/0 \
        --minutes M --workdir DIR
    tf-rnn eval --workdir DIR --split valid --windows 2000
    tf-rnn eval --workdir DIR --split valid

nanoGPT's README (karpathy/nanoGPT, "quick start") reports on this split a validation
loss of 1.88 for its CPU recipe ("about 3 minutes", a 4-layer GPT of width 128 with a
context of 64) and 1.4697 for its 6-layer GPT of width 384 ("about 3 minutes" on one
A100 GPU); the result line puts them beside the run's figures as `published`.
"""

import sys

from tf_rnn import cli
from tf_rnn.cli import arguments

# nanoGPT's README, quick start: validation loss (nats per character) on shakespeare_char.
PUBLISHED = {"nanogpt_cpu_recipe_3min": 1.88, "nanogpt_a100_6layer_3min": 1.4697}
SPLIT = "90/10/0"  # nanoGPT's data/shakespeare_char/prepare.py: first 90 %, last 10 %
WINDOW = 256  # its train_shakespeare_char.py block_size


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.shakespeare_char",
                                 description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="text8_best_3min", help="the tf_rnn preset")
    p.add_argument("--minutes", type=arguments.positive_minutes, default=3.0,
                   help="the time budget")
    p.add_argument("--windows", type=int, default=2000, help="nanoGPT-style windows scored")
    p.add_argument("--workdir", help="the run's directory (default: "
                   "runs/shakespeare_char-PRESET-Mmin)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    arguments.add_verbose_argument(p)
    args = p.parse_args(argv)
    if args.windows <= 0:
        p.error(f"argument --windows: expected a positive number, got {args.windows}")
    args.workdir = args.workdir or f"runs/shakespeare_char-{args.preset}-{args.minutes:g}min"
    return args


def commands(args):
    """The `tf-rnn` commands the run is."""
    w = args.workdir
    return [f"tf-rnn train --preset {args.preset} --data shakespeare --set vocab=corpus "
            f"--set split={SPLIT} --minutes {args.minutes:g} --workdir {w}",
            f"tf-rnn eval --workdir {w} --split valid --windows {args.windows}",
            f"tf-rnn eval --workdir {w} --split valid"]


def run(args):
    from tf_rnn.base import config as config_lib
    from tf_rnn.engine import steps
    from tf_rnn.run import reading
    from tf_rnn.run.directory import Workdir
    from tf_rnn.train import training

    config = config_lib.get_preset(args.preset).replace(
        vocab="corpus", split=SPLIT, budget_minutes=args.minutes)
    trained = training.train(config, args.workdir, "shakespeare",
                             progress=not args.no_progress)
    model, _, config = loaded = reading.load_model(args.workdir)
    corpus = reading.load_corpus_for(config, Workdir(args.workdir),
                                  reading.run_data(args.workdir))
    windows = steps.evaluate_windows(model, corpus.valid, args.windows, WINDOW)
    streams = steps.evaluate(model, corpus.valid, config.eval_batch_size,
                             config.num_unrollings)
    return {"preset": args.preset, "minutes": args.minutes,
            "train_minutes": trained["train_minutes"], "step": trained["step"],
            "valid_chars": len(corpus.valid), "vocab": corpus.vocab.size,
            "nats_windows": windows["loss"], "nats_streams": streams["loss"],
            "bpc_windows": windows["bpc"], "bpc_streams": streams["bpc"],
            "windows": args.windows, "window_length": WINDOW, "published": PUBLISHED,
            "commands": commands(args), **loaded.checkpoint}


def main(argv=None):
    args = parse_args(argv)
    return cli.run_and_report(run, args, prog="python -m experiments.shakespeare_char")


if __name__ == "__main__":
    sys.exit(main())
