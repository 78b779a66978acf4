"""The `tf-rnn` command: train | eval | sample | score | inspect | export | diagnose, thin
over the library (the options of each are in `tf_rnn.cli.arguments`).

Progress goes to stderr; the last line on stdout is one JSON object with the
command's figures. User errors (`tf_rnn.base.errors.UserError`) print one line
`tf-rnn: error: ...` and exit 2; any other exception is a bug and keeps its traceback.

Imports every folder, those behind which TensorFlow loads inside the commands.
"""

import re
import sys

from tf_rnn.base import jsonl
from tf_rnn.cli.arguments import build_parser


def _checkpoint_choice(args):
    """The --checkpoint keyword for the library call; none (its default, latest) when
    the flag is not given."""
    return {"checkpoint": args.checkpoint} if args.checkpoint else {}


def resolve_config(preset, steps=None, assignments=(), workdir=None):
    """The Config of a training command: preset (or the saved config), then overrides."""
    from tf_rnn.base import config as config_lib
    from tf_rnn.run.directory import Workdir

    if preset is None and workdir is not None and Workdir(workdir).config_path.is_file():
        config = Workdir(workdir).load_config()
    else:
        config = config_lib.get_preset(preset or "text8_arch1")
    if steps is not None:
        config = config.replace(steps=steps, epochs=0.0)
    return config_lib.with_overrides(config, assignments)


def cmd_train(args):
    from tf_rnn.train import training

    config = resolve_config(args.preset, args.steps, args.set, args.workdir)
    if args.minutes is not None:
        config = config.replace(budget_minutes=args.minutes)
    if getattr(args, "strategy", None):
        config = config.replace(strategy=args.strategy)
    return training.train(config, args.workdir, args.data,
                          allow_new_corpus=args.allow_new_corpus,
                          cache_dir=args.cache_dir, progress=not args.no_progress)


def cmd_eval(args):
    from tf_rnn.base.checks import positive_integer
    from tf_rnn.base.errors import ArgumentError

    windows = None
    if args.windows:
        windows = (positive_integer("windows", args.windows, error=ArgumentError),
                   positive_integer("window_length", args.window_length, error=ArgumentError),
                   args.seed)
    return evaluate_split(args.workdir, args.split, args.data, args.cache_dir,
                          args.batch_size, windows, **_checkpoint_choice(args))


def evaluate_split(workdir, split="valid", data=None, cache_dir=None, batch_size=None,
                   windows=None, **checkpoint):
    """`tf-rnn eval`: the figures of a run's checkpoint (`checkpoint`: `reading.load_model`'s
    choice; default the latest) on a split of its corpus ("train", "valid", "test",
    "all"), streaming (`steps.evaluate`), or nanoGPT's way with `windows` = (count,
    length, seed) (`steps.evaluate_windows`)."""
    import numpy as np

    from tf_rnn.engine import steps as steps_lib
    from tf_rnn.run import reading
    from tf_rnn.run.directory import Workdir

    workdir = Workdir(workdir)
    loaded = reading.load_model(workdir, **checkpoint)
    model, vocab, config = loaded
    corpus = reading.load_corpus_for(config, workdir, reading.run_data(workdir, data), cache_dir)
    ids = (np.concatenate([corpus.train, corpus.valid, corpus.test]) if split == "all"
           else getattr(corpus, split))
    batch_size = batch_size or config.eval_batch_size
    if windows:
        figures = steps_lib.evaluate_windows(model, ids, *windows, batch_size)
    else:
        figures = steps_lib.evaluate(model, ids, batch_size, config.num_unrollings)
    return {"split": split, **figures, **loaded.checkpoint}


def cmd_score(args):
    """Prints a JSON line per character (or line), then returns the summary: `bpc` over
    the characters after the first (as `tf-rnn eval --batch-size 1` on the text)."""
    from tf_rnn.base import checks
    from tf_rnn.base.errors import ArgumentError
    from tf_rnn.data import textio
    from tf_rnn.engine import scoring

    top_k = checks.positive_integer("top_k", args.top_k, error=ArgumentError)
    text = args.text if args.text is not None else textio.load_text(args.file)
    if args.export:
        if args.checkpoint:
            raise ArgumentError(f"--checkpoint {args.checkpoint} picks a checkpoint of "
                                f"--workdir; an --export holds the one it was written from.")
        import tensorflow as tf

        from tf_rnn.data.vocab import Vocabulary
        from tf_rnn.serve import export

        loaded, meta = export.load_export(args.export)
        vocab = Vocabulary(meta["vocab"])
        scorer, unknown, normalize = scoring.export_scorer(loaded), meta["unknown"], \
            meta["config"].get("normalize", False)
        zero = loaded.zero_state(batch_size=tf.constant(1))["state"]
        used = {"export": args.export, "step": meta.get("step")}
    else:
        from tf_rnn.run import reading

        loaded = reading.load_model(args.workdir, **_checkpoint_choice(args))
        model, vocab, config = loaded
        scorer, unknown, normalize = scoring.window_scorer(model), config.unknown, \
            config.normalize
        zero, used = model.zero_state(1), loaded.checkpoint
    text, lines = scoring.read_by_line(text, normalize)  # lines as the user wrote them
    ids = vocab.encode(text, unknown=unknown)
    scores = scoring.score_characters(scorer, ids, zero, top_k)
    shown = vocab.decode(ids)  # what the model read (unknown=space: spaces)
    if args.by == "line":
        rows = scoring.by_line(lines, scores["log2p"])
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


def cmd_inspect(args):
    """Writes the HTML report; JSON: its path and size, the excerpt's BPC (`score`'s),
    the ranking's best unit and the checkpoint."""
    from tf_rnn.inspect import report

    return report.inspect(args.workdir, args.file, args.out, args.chars,
                          **_checkpoint_choice(args))


def cmd_sample(args):
    """JSON: `text` (or `texts`, one per stream, with --num-streams > 1) and the
    settings; with --out, `out` and `chars` (the file's characters) instead of the text."""
    import time

    from tf_rnn.base.errors import ArgumentError
    from tf_rnn.engine import sampling

    if args.out and args.num_streams != 1:
        raise ArgumentError(f"--out writes one stream, got --num-streams {args.num_streams} "
                            f"(drop --out to get the streams in the JSON line).")
    if args.export and args.checkpoint:
        raise ArgumentError(f"--checkpoint {args.checkpoint} picks a checkpoint of "
                            f"--workdir; an --export holds the one it was written from.")
    progress = not args.no_progress and args.length > sampling.SAMPLE_CHUNK
    t0 = time.perf_counter()
    if args.export:
        from tf_rnn.serve import export

        texts = export.sample_from_export(args.export, args.prime, args.length,
                                          args.temperature, args.top_k, args.seed,
                                          args.num_streams, progress=progress)
    else:
        from tf_rnn.run import reading

        loaded = reading.load_model(args.workdir, **_checkpoint_choice(args))
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
        from tf_rnn.run.directory import atomic_write_text

        atomic_write_text(args.out, texts[0])
        return {"out": str(args.out), "chars": len(texts[0]), **settings,
                "seconds": round(seconds, 3),  # load, compile and generation
                "chars_per_sec": round(args.length / max(seconds, 1e-9), 1)}
    return {"texts" if args.num_streams > 1 else "text":
            texts if args.num_streams > 1 else texts[0], **settings}


def cmd_export(args):
    from tf_rnn.serve import export

    return export.export(args.workdir, args.out, overwrite=args.overwrite,
                         **_checkpoint_choice(args))


def cmd_diagnose(args):
    from tf_rnn.inspect import diagnostics

    return diagnostics.diagnose(args.workdir, args.data, args.windows, args.plot,
                                args.cache_dir, **_checkpoint_choice(args))


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "sample": cmd_sample,
            "score": cmd_score, "inspect": cmd_inspect, "export": cmd_export,
            "diagnose": cmd_diagnose}


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
    from tf_rnn.base import logs

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

    from tf_rnn.base.errors import UserError
    from tf_rnn.run.checkpoint import TrainingDiverged
    from tf_rnn.run.preemption import Preempted

    quiet_tensorflow(verbose)
    try:
        return 0, fn(args)
    # UserError: what the user asked or gave (tf_rnn.base.errors); a plain ValueError, a
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
