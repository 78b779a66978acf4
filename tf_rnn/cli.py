"""The `tf-rnn` command: train | eval | sample | export | diagnose, thin over the library.

Progress goes to stderr; the last line on stdout is one JSON object with the
command's figures. User errors (`tf_rnn.errors.UserError`) print one line
`tf-rnn: error: ...` and exit 2; any other exception is a bug and keeps its traceback.
"""

import argparse
import re
import sys

import tf_rnn
from tf_rnn import jsonl


def _add_train(sub):
    p = sub.add_parser("train", help="train a model (resumes a run found in --workdir)",
                       epilog=_train_epilog())
    p.add_argument("--preset", help="preset name, listed below (default: the work "
                   "directory's saved config, else text8_arch1)")
    add_run_arguments(p)
    return p


def add_run_arguments(p, workdir_required=True):
    """--data / --workdir / --steps / --minutes / --set / --strategy, shared with the
    experiments (whose --workdir has a default: `workdir_required=False`)."""
    from tf_rnn.config import STRATEGIES

    p.add_argument("--data", help="corpus: UTF-8 text or a zip holding one file "
                   "(default: a resumed run's own corpus, recorded in its run.json; for "
                   "a new run text8, downloaded into --cache-dir)")
    p.add_argument("--workdir", required=workdir_required, help="the run's directory")
    p.add_argument("--steps", type=int, help="train until this step")
    p.add_argument("--minutes", type=float, help="train for this many minutes (config "
                   "field `budget_minutes`; with --steps: whichever ends first); "
                   "schedule=linear or cooldown then decays to zero at the budget")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set batch_size=64")
    p.add_argument("--strategy", choices=STRATEGIES, help="tf.distribute strategy (config "
                   "field `strategy`): default (one device), mirrored (all local GPUs), "
                   "multiworker (the cluster in TF_CONFIG)")
    p.add_argument("--cache-dir", help=_CACHE_DIR_HELP)
    p.add_argument("--allow-new-corpus", action="store_true", help="resume a run on "
                   "another corpus than the one recorded in its run.json (refused "
                   "without this flag)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (a log "
                   "line every log_every steps instead)")
    add_verbose_argument(p)


def add_verbose_argument(p):
    """--verbose: show TensorFlow's own log lines (hidden by default, see tf_rnn.logs)."""
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log "
                   "lines (also: TF_RNN_VERBOSE=1)")


_CHECKPOINT_HELP = (
    "which checkpoint of the run: latest, best (the lowest validation BPC; kept by runs "
    "with eval_every > 0) or ckpt-N (a kept one of step N). Default latest, for every "
    "command: the weights whose figures training printed last and that a resume goes on "
    "from; the JSON line names the checkpoint used (docs/cli.md)")


def add_checkpoint_argument(p):
    """--checkpoint best|latest|ckpt-N of eval, sample, export and diagnose."""
    p.add_argument("--checkpoint", metavar="best|latest|ckpt-N", help=_CHECKPOINT_HELP)


def _checkpoint_choice(args):
    """The --checkpoint keyword for the library call; none (its default, latest) when
    the flag is not given."""
    return {"checkpoint": args.checkpoint} if args.checkpoint else {}


def _add_eval(sub):
    p = sub.add_parser("eval", help="bits per character of a checkpoint (the latest)")
    p.add_argument("--workdir", required=True, help="the run's directory")
    add_checkpoint_argument(p)
    p.add_argument("--data", help="corpus (default: the one the run trained on)")
    p.add_argument("--split", default="valid", choices=("train", "valid", "test", "all"),
                   help="all: the whole corpus as one text")
    p.add_argument("--batch-size", type=int, help="parallel streams (default: the "
                   "config's eval_batch_size)")
    p.add_argument("--cache-dir", help=_CACHE_DIR_HELP)
    add_verbose_argument(p)
    return p


def _add_sample(sub):
    p = sub.add_parser("sample", help="generate text from a checkpoint (the latest) or "
                       "an export")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a run's directory (--checkpoint: which)")
    source.add_argument("--export", help="a SavedModel written by `tf-rnn export` "
                        "(no checkpoint needed)")
    add_checkpoint_argument(p)
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("--length", type=int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="<= 0: greedy")
    p.add_argument("--top-k", type=int, default=0, help="> 0: sample among the k best")
    p.add_argument("--seed", type=int, help="makes the sample reproducible")
    p.add_argument("--num-streams", type=int, default=1, help="independent samples")
    p.add_argument("--out", metavar="FILE", help="write the text to FILE (atomically); "
                   "the JSON line then gives its path and length, not the text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown "
                   "on stderr for samples longer than one chunk, 20 000 characters)")
    add_verbose_argument(p)
    return p


def _add_score(sub):
    p = sub.add_parser("score", help="every character's log2-probability and the model's "
                       "guesses, given the text before it (JSON lines)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a run's directory (--checkpoint: which)")
    source.add_argument("--export", help="a SavedModel written by `tf-rnn export`")
    add_checkpoint_argument(p)
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to score")
    text.add_argument("--file", help="a UTF-8 file to score")
    p.add_argument("--by", choices=("char", "line"), default="char",
                   help="one JSON line per character (default) or per line of text")
    p.add_argument("--top-k", type=int, default=5, help="guesses shown per character")
    add_verbose_argument(p)
    return p


def _add_export(sub):
    p = sub.add_parser("export", help="write a checkpoint (the latest) as a SavedModel")
    p.add_argument("--workdir", required=True, help="the run's directory")
    add_checkpoint_argument(p)
    p.add_argument("--out", help="export directory (default: WORKDIR/export)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty export directory (atomically)")
    add_verbose_argument(p)
    return p


def _add_diagnose(sub):
    p = sub.add_parser("diagnose", help="gradient flow through time, unit activity and "
                       "recurrent spectrum of a checkpoint (the latest; tf_rnn.diagnostics)")
    p.add_argument("--workdir", required=True, help="the run's directory")
    add_checkpoint_argument(p)
    p.add_argument("--data", help="corpus (default: the one the run trained on)")
    p.add_argument("--windows", type=int, default=4, help="validation windows measured")
    p.add_argument("--plot", metavar="FILE.png", help="draw gradient vs lag and unit "
                   "activity (needs matplotlib: the `plot` extra)")
    p.add_argument("--cache-dir", help=_CACHE_DIR_HELP)
    return p


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help; epilogs (train's tables) kept as written.

    No "(default: ...)" where there is nothing to say (None, off, empty) or where the
    help already tells what the default is.
    """

    def _get_help_string(self, action):
        help = action.help or ""
        if (action.default is None or action.default is False or action.default in ("", [])
                or "default" in help):
            return help
        return super()._get_help_string(action)


_CACHE_DIR_HELP = ("where text8.zip is cached (default: $TF_RNN_CACHE, else "
                   "~/.cache/tf_rnn)")


def _train_epilog():
    """The presets and every `--set` key with its default and description (config.py's)."""
    import dataclasses
    import textwrap

    from tf_rnn import config as config_lib

    defaults = config_lib.Config()
    lines = ["presets (--preset NAME) and the fields each sets apart from the defaults:"]
    for name, preset in config_lib.PRESETS.items():
        changed = " ".join(f"{f}={v}" for f, v in preset.to_dict().items()
                           if v != getattr(defaults, f)) or "(the defaults)"
        lines += textwrap.wrap(changed, 79, initial_indent=f"  {name:<19}",
                               subsequent_indent=" " * 21, break_on_hyphens=False)
    lines += ["", "config fields (--set KEY=VALUE, repeatable): name, default, meaning"]
    for field in dataclasses.fields(config_lib.Config):
        head = f"  {field.name:<19}{field.default!s:<10} "
        lines += textwrap.wrap(field.metadata["help"], 79, initial_indent=head,
                               subsequent_indent=" " * len(head), break_on_hyphens=False)
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(prog="tf-rnn", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {tf_rnn.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_eval(sub)
    _add_sample(sub)
    _add_score(sub)
    _add_export(sub)
    _add_diagnose(sub)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def resolve_config(preset, steps=None, assignments=(), workdir=None):
    """The Config of a training command: preset (or the saved config), then overrides."""
    from tf_rnn import config as config_lib
    from tf_rnn.workdir import Workdir

    if preset is None and workdir is not None and Workdir(workdir).config_path.is_file():
        config = Workdir(workdir).load_config()
    else:
        config = config_lib.get_preset(preset or "text8_arch1")
    if steps is not None:
        config = config.replace(steps=steps, epochs=0.0)
    return config_lib.with_overrides(config, assignments)


def cmd_train(args):
    from tf_rnn import training

    config = resolve_config(args.preset, args.steps, args.set, args.workdir)
    if args.minutes is not None:
        config = config.replace(budget_minutes=args.minutes)
    if getattr(args, "strategy", None):
        config = config.replace(strategy=args.strategy)
    return training.train(config, args.workdir, args.data,
                          allow_new_corpus=args.allow_new_corpus,
                          cache_dir=args.cache_dir, progress=not args.no_progress)


def cmd_eval(args):
    from tf_rnn import steps as steps_lib
    from tf_rnn import runs
    from tf_rnn.workdir import Workdir

    workdir = Workdir(args.workdir)
    loaded = runs.load_model(workdir, **_checkpoint_choice(args))
    model, vocab, config = loaded
    data = runs.run_data(workdir, args.data)
    corpus = runs.load_corpus_for(config, workdir, data, args.cache_dir)
    if args.split == "all":
        import numpy as np

        ids = np.concatenate([corpus.train, corpus.valid, corpus.test])
    else:
        ids = getattr(corpus, args.split)
    figures = steps_lib.evaluate(model, ids, args.batch_size or config.eval_batch_size,
                                 config.num_unrollings)
    return {"split": args.split, **figures, **loaded.checkpoint}


def cmd_score(args):
    """Prints a JSON line per character (or line), then returns the summary: `bpc` over
    the characters after the first (as `tf-rnn eval --batch-size 1` on the text)."""
    from tf_rnn import checks, data, scoring, textio
    from tf_rnn.errors import ArgumentError

    top_k = checks.positive_integer("top_k", args.top_k, error=ArgumentError)
    text = args.text if args.text is not None else textio.load_text(args.file)
    if args.export:
        if args.checkpoint:
            raise ArgumentError(f"--checkpoint {args.checkpoint} picks a checkpoint of "
                                f"--workdir; an --export holds the one it was written from.")
        import tensorflow as tf

        from tf_rnn import export
        from tf_rnn.vocab import Vocabulary

        loaded, meta = export.load_export(args.export)
        vocab = Vocabulary(meta["vocab"])
        scorer, unknown, normalize = scoring.export_scorer(loaded), meta["unknown"], \
            meta["config"].get("normalize", False)
        zero = loaded.zero_state(batch_size=tf.constant(1))["state"]
        used = {"export": args.export, "step": meta.get("step")}
    else:
        from tf_rnn import runs

        loaded = runs.load_model(args.workdir, **_checkpoint_choice(args))
        model, vocab, config = loaded
        scorer, unknown, normalize = scoring.window_scorer(model), config.unknown, \
            config.normalize
        zero, used = model.zero_state(1), loaded.checkpoint
    text = data.normalize_text8(text) if normalize else text
    ids = vocab.encode(text, unknown=unknown)
    scores = scoring.score_characters(scorer, ids, zero, top_k)
    shown = vocab.decode(ids)  # what the model read (unknown=space: spaces)
    if args.by == "line":
        rows = scoring.by_line(shown, scores["log2p"])
    else:
        rows = [{"i": i, "char": shown[i], "log2p": None if i == 0 else scores["log2p"][i],
                 "top": [[vocab.decode([int(c)]), float(p)] for c, p in
                         zip(scores["top_ids"][i], scores["top_p"][i]) if c >= 0]}
                for i in range(len(ids))]
    for row in rows:
        print(jsonl.dumps(row))
    bits = -scores["log2p"][1:]
    return {"summary": {"bpc": float(bits.mean()), "chars": int(bits.size),
                        "text_chars": len(ids), **used}}


def cmd_sample(args):
    """JSON: `text` (or `texts`, one per stream, with --num-streams > 1) and the
    settings; with --out, `out` and `chars` (the file's characters) instead of the text."""
    import time

    from tf_rnn import sampling
    from tf_rnn.errors import ArgumentError

    if args.out and args.num_streams != 1:
        raise ArgumentError(f"--out writes one stream, got --num-streams {args.num_streams} "
                            f"(drop --out to get the streams in the JSON line).")
    if args.export and args.checkpoint:
        raise ArgumentError(f"--checkpoint {args.checkpoint} picks a checkpoint of "
                            f"--workdir; an --export holds the one it was written from.")
    progress = not args.no_progress and args.length > sampling.SAMPLE_CHUNK
    t0 = time.perf_counter()
    if args.export:
        from tf_rnn import export

        texts = export.sample_from_export(args.export, args.prime, args.length,
                                          args.temperature, args.top_k, args.seed,
                                          args.num_streams, progress=progress)
    else:
        from tf_rnn import runs

        loaded = runs.load_model(args.workdir, **_checkpoint_choice(args))
        model, vocab, _ = loaded
        used = loaded.checkpoint
        unknown = sorted(set(args.prime) - set(vocab.chars))
        if unknown:
            raise ArgumentError(f"--prime {args.prime!r} has character(s) outside the "
                                f"model's vocabulary {vocab.chars!r}: "
                                f"{', '.join(map(repr, unknown))}.")
        texts = sampling.sample(model, vocab, args.prime, args.length, args.temperature,
                                args.top_k, args.seed, args.num_streams, progress=progress)
    seconds = time.perf_counter() - t0
    settings = {"prime": args.prime, "length": args.length,
                "temperature": args.temperature, "top_k": args.top_k, "seed": args.seed,
                **({} if args.export else used)}
    if args.out:
        from tf_rnn.workdir import atomic_write_text

        atomic_write_text(args.out, texts[0])
        return {"out": str(args.out), "chars": len(texts[0]), **settings,
                "seconds": round(seconds, 3),  # load, compile and generation
                "chars_per_sec": round(args.length / max(seconds, 1e-9), 1)}
    return {"texts" if args.num_streams > 1 else "text":
            texts if args.num_streams > 1 else texts[0], **settings}


def cmd_export(args):
    from tf_rnn import export

    return export.export(args.workdir, args.out, overwrite=args.overwrite,
                         **_checkpoint_choice(args))


def cmd_diagnose(args):
    from tf_rnn import diagnostics

    return diagnostics.diagnose(args.workdir, args.data, args.windows, args.plot,
                                args.cache_dir, **_checkpoint_choice(args))


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample,
            "score": cmd_score, "export": cmd_export, "diagnose": cmd_diagnose}


def quiet_tensorflow(verbose=False):
    """Keeps TensorFlow's Python-side warnings (retracing notes, ...) off the terminal."""
    import logging

    import tensorflow as tf

    if verbose:
        return
    tf.get_logger().setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def run_and_report(fn, args, prog="tf-rnn"):
    """Runs a command; prints its JSON result last on stdout, or one error line.

    A command that printed its own rows (a benchmark's, one per line) returns None:
    nothing more is printed.

    Returns the exit status: 0, 2 for a user error (one line on stderr), the signal's
    status for a training run stopped by SIGTERM / SIGINT, 130 for Ctrl-C elsewhere
    (start-up included: no traceback while TensorFlow imports). Any other exception is
    a bug: it propagates with its traceback (Python exits 1).
    """
    from tf_rnn import logs

    verbose = logs.verbose_requested(getattr(args, "verbose", False))
    try:
        with logs.native_logs_filtered(verbose):
            status, result = _run(fn, args, prog, verbose)
    except KeyboardInterrupt:  # before the command started: nothing to keep or say
        return 130
    if status == 0 and result is not None:
        print(jsonl.dumps(result))
    return status


def _run(fn, args, prog, verbose):
    """(0, the command's result), or (its exit status, None) after saying why it failed."""
    import tensorflow as tf

    from tf_rnn.errors import UserError
    from tf_rnn.preemption import Preempted
    from tf_rnn.run_state import TrainingDiverged

    quiet_tensorflow(verbose)
    try:
        return 0, fn(args)
    # UserError: what the user asked or gave (tf_rnn.errors); a plain ValueError, a
    # TypeError, ... is a bug and keeps its traceback. OSError is the user's machine, not
    # the code: a --out in a missing directory, a full disk, a missing permission; the
    # message names the path and the reason ("[Errno 28] No space left on device").
    except (UserError, TrainingDiverged, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2, None
    except tf.errors.ResourceExhaustedError as e:  # past the up-front estimate
        first = (str(e.message).strip().splitlines() or ["out of memory"])[0]
        first = re.sub(r"^\{\{[^}]*\}\}\s*", "", first)  # {{function_node ...}}
        print(f"{prog}: error: out of memory: {first[:300]}. Use a smaller model or "
              f"batch (--set num_nodes=..., --set batch_size=...).", file=sys.stderr)
        return 2, None
    except Preempted as e:  # SIGTERM / SIGINT in training: a checkpoint at its step
        print(f"{prog}: {e}", file=sys.stderr)
        return e.exit_code, None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the last checkpoint is kept.", file=sys.stderr)
        return 130, None


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        return 130
    return run_and_report(COMMANDS[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
