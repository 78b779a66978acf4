"""SavedModel export: `export(workdir, out, checkpoint="latest")` writes a checkpoint of a
run (latest, best or ckpt-N) as a SavedModel that serves without tf_rnn installed; its
module and signatures are `tf_rnn.serve.serving`'s (zero_state, step, step_text, generate,
generate_more, score). `assets.extra/tf_rnn.json` records the run, step and vocabulary;
`load_export` opens an export, `sample_from_export` generates text from one.
"""

import contextlib
import json
import os
import pathlib
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf
import tqdm

from tf_rnn.base import files, logs
from tf_rnn.base.checks import positive_integer
from tf_rnn.base.errors import ExportError
from tf_rnn.engine import sampling
from tf_rnn.run import preemption, reading
from tf_rnn.run.directory import atomic_write_text, Workdir, write_failed
from tf_rnn.serve.serving import CharModelExport, SIGNATURES

METADATA = os.path.join("assets.extra", "tf_rnn.json")


def default_export_dir(workdir):
    """WORKDIR/export: where `tf-rnn export` writes when --out is not given."""
    return Workdir(workdir).path / "export"


def _check_target(out, workdir, overwrite):
    if out.exists() and not out.is_dir():
        raise ExportError(f"Export directory {str(out)!r} exists and is not a directory.")
    run = Workdir(workdir).path.resolve()
    if out.resolve() == run or out.resolve() in run.parents:
        raise ExportError(f"Export directory {str(out)!r} would replace the work directory "
                          f"{str(run)!r}; choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"Export directory {str(out)!r} exists and is not empty; "
                              f"pass --overwrite to replace it, or choose another --out.")
        if not (out / "saved_model.pb").is_file():  # --overwrite replaces exports only
            raise ExportError(f"Export directory {str(out)!r} is not empty and holds no "
                              f"SavedModel: not replacing it, even with --overwrite. "
                              f"Remove it yourself, or choose another --out.")


def _replace_dir(staging, out):
    """Puts the finished `staging` directory at `out`: old -> aside, new -> out, rm aside.

    Each step is one rename, so `out` is always absent, the old export or the new one:
    never a partly written directory.
    """
    if not out.exists():
        os.rename(staging, out)
        return
    aside = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old",
                                          dir=out.parent))
    os.rename(out, aside / "old")
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(aside / "old", out)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def export(workdir, out=None, overwrite=False, unknown=None, jit_compile=True,
           checkpoint="latest"):
    """Writes a checkpoint of `workdir` (the latest) as a SavedModel in `out`.

    The export is written beside `out` and renamed into place, so a crash leaves the
    previous export (or none), never half of one.

    Args:
      workdir: a trained run's directory.
      out: the export directory (default WORKDIR/export). If it exists it must be
        empty, unless `overwrite`.
      overwrite: replace an existing non-empty `out` that holds a SavedModel (a
        directory of other files is never replaced).
      unknown: "error" | "space" for characters outside the vocabulary in string
        inputs (default: the run's config.unknown).
      jit_compile: XLA-compile `generate`'s sampling loop (see `CharModelExport`).
      checkpoint: "latest", "best" or "ckpt-N" (`reading.load_model`).

    Returns:
      {"export_dir", "model", "step", "checkpoint" (the path exported), "which" (as
       asked), "best_valid_bpc" (a best's validation BPC, else None), "alphabet_size",
       "state_size", "signatures", "generate_xla"}.

    Raises:
      ExportError: `out` is a file, holds `workdir`, is non-empty without
        `overwrite`, or is non-empty and no SavedModel.
      DataError / WorkdirError: no trained run in `workdir`, or no such checkpoint.
    """
    out = pathlib.Path(default_export_dir(workdir) if out is None else out)
    out = out.expanduser().absolute()
    files.require_parent(out, "--out")  # the export directory is made, not its parents
    _check_target(out, workdir, overwrite)
    run_dir = Workdir(workdir).path.absolute()
    # Replacing the run's own export is writing into the run: not beside a live trainer.
    lock = (preemption.WorkdirLock(run_dir, "an export into it")
            if overwrite and run_dir in out.parents else contextlib.nullcontext())
    with lock:
        return _export(workdir, out, unknown, jit_compile, checkpoint)


def _export(workdir, out, unknown, jit_compile, checkpoint):
    loaded = reading.load_model(workdir, checkpoint)
    model, vocab, config = loaded
    info = {"export_dir": str(out), "model": config.model, **loaded.checkpoint,
            "alphabet_size": vocab.size, "state_size": int(model.state_size),
            "signatures": list(SIGNATURES)}
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp",
                                            dir=out.parent))
    try:
        with tempfile.TemporaryDirectory() as asset_dir:
            module = CharModelExport(model, vocab, asset_dir, unknown or config.unknown,
                                     jit_compile)
            info["generate_xla"] = module.xla
            tf.saved_model.save(module, str(staging), signatures=module.signatures())
        meta = {**info, "vocab": vocab.chars, "unknown": unknown or config.unknown,
                "config": config.to_dict()}
        atomic_write_text(staging / METADATA, json.dumps(meta, indent=2) + "\n")
        os.chmod(staging / METADATA, 0o644)  # mkstemp/mkdtemp make them owner-only;
        os.chmod(staging, 0o755)  # a serving process may run as another user
        _replace_dir(staging, out)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, (OSError, tf.errors.OpError)):  # a full disk, a size limit
            needed = sum(v.numpy().nbytes for v in model.variables) + 200_000
            raise write_failed("the export", out, err, needed, "The previous export, if "
                               "any, is kept.") from None
        raise
    return info


def saved_model_path(export_dir):
    """The export directory as a path; ExportError when it holds no SavedModel."""
    path = pathlib.Path(export_dir).expanduser()
    if not (path / "saved_model.pb").is_file():
        raise ExportError(f"No SavedModel in {str(path)!r} (write one with `tf-rnn export`).")
    return path


def load_export(export_dir):
    """(the loaded SavedModel, its `METADATA`: the run, step, vocabulary, `unknown` and
    config) of an export directory; ExportError when it holds no SavedModel."""
    path = saved_model_path(export_dir)
    with logs.native_logs_filtered():  # loading prints TensorFlow's native log lines
        loaded = tf.saved_model.load(str(path))
    return loaded, json.loads((path / METADATA).read_text(encoding="utf-8"))


def sample_from_export(export_dir, prime="", length=100, temperature=1.0, top_k=0,
                       seed=None, num_streams=1, chunk_size=sampling.SAMPLE_CHUNK,
                       progress=False):
    """`num_streams` texts (prime + `length` generated characters) from an export.

    Needs only the export directory: the checkpoint and the work directory are not read.
    Generates `chunk_size` characters per call (`generate`, then `generate_more`
    carrying the state; the text does not depend on `chunk_size`), with a tqdm bar on
    stderr if `progress`. An export without `generate_more` (written before it
    existed) answers in one call.
    """
    sampling.check_sample_arguments(length, num_streams, temperature, top_k, prime)
    positive_integer("chunk_size", chunk_size)
    path = saved_model_path(export_dir)
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0] >> 1) if seed is None \
        else int(seed)
    # Loading and the first calls print TensorFlow's native log lines (the CLI filters
    # them already; a library caller gets the same quiet).
    with logs.native_logs_filtered():
        loaded = tf.saved_model.load(str(path))
        if not hasattr(loaded, "generate_more"):
            chunk_size = max(length, 1)
        with tqdm.tqdm(total=length * num_streams, disable=not progress, unit="char",
                       unit_scale=True, file=sys.stderr, desc="sample", leave=False) as bar:
            return _generate_in_chunks(loaded, [prime] * num_streams, length, chunk_size,
                                       (tf.constant(float(temperature)),
                                        tf.constant(int(top_k)),
                                        tf.constant(seed, tf.int64)), bar)


def _generate_in_chunks(loaded, primes, length, chunk_size, args, bar):
    """`generate` for the first chunk, `generate_more` for the others; the texts."""
    first = min(length, chunk_size)
    try:
        result = loaded.generate(tf.constant(primes), tf.constant(first), *args)
    except tf.errors.InvalidArgumentError as e:
        lines = [line.strip() for line in e.message.splitlines() if "assertion failed" in line]
        reason = lines[0] if lines else e.message.strip().splitlines()[-1]
        raise ExportError(f"The export rejected the prime {primes[0]!r}: {reason}") from None
    pieces = [[t.decode("utf-8")] for t in result["text"].numpy()]
    bar.update(first * len(primes))
    state = result.get("state")
    for start in range(first, length, chunk_size):
        n = min(chunk_size, length - start)
        result = loaded.generate_more(tf.constant([p[-1][-1] for p in pieces]), state,
                                      tf.constant(n), *args, tf.constant(start))
        state = result["state"]
        for piece, text in zip(pieces, result["generated"].numpy()):
            piece.append(text.decode("utf-8"))
        bar.update(n * len(primes))
    return ["".join(piece) for piece in pieces]
