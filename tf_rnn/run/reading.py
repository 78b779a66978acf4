"""Reading a run back: the newest checkpoint that loads, the model, the corpus it used.

`train`, `eval`, `sample`, `export` and `diagnose` all start here. Besides its latest
checkpoints (WORKDIR/checkpoints/ckpt-N) a run that validates keeps the weights of its
lowest validation BPC in WORKDIR/best/best-N (`best_dir`; written by
`run_state.BestCheckpoint`); `load_model(workdir, checkpoint)` reads either.
"""

import math
import os
import re
import time
import types

import numpy as np
import tensorflow as tf

from tf_rnn import data as data_lib, models
from tf_rnn.base import logs
from tf_rnn.base.errors import ArgumentError, DataError, WorkdirError
from tf_rnn.data import corpora, text8, textio
from tf_rnn.data.vocab import Vocabulary
from tf_rnn.run import integrity
from tf_rnn.run.directory import Workdir


def _log(message):
    logs.note(message)


def restore_newest(checkpoint, directory, check):
    """Restores into `checkpoint` the newest checkpoint listed in `directory` that loads.

    A checkpoint that cannot be read back (a partial or corrupt file, one that does not
    fit) is reported and the one before it tried: a damaged save costs that save only.
    Saving itself is atomic (TensorFlow writes the files, then renames a new index in).

    Args:
      checkpoint: a `tf.train.Checkpoint`, or a function making one (a reader beside a
        live trainer: a fresh one for each try, as a failed restore leaves it unusable).
      check: called with the restore status; raises if the checkpoint does not fit.

    Returns:
      The path restored, or None when the directory lists no checkpoint.

    Raises:
      WorkdirError: checkpoints are listed, but none of them loads.
    """
    index = os.path.join(directory, "checkpoint")
    for _ in range(20):  # a live trainer replaces the index and deletes old checkpoints
        state = _checkpoint_state(directory)
        path, failures = _restore_listed(
            checkpoint() if callable(checkpoint) else checkpoint, state, check)
        if path or (state is not None and not failures) or not os.path.isfile(index):
            break
        if state is not None and _checkpoint_state(directory) == state:
            break  # the same index still: the damage is real, not a save under way
        time.sleep(0.05)  # an index caught mid-replacement: read it again
    if path:
        if failures:
            _log(f"Skipped unreadable checkpoint(s) ({'; '.join(failures)}); restored {path}.")
        return path
    if failures or (state is None and os.path.isfile(os.path.join(directory, "checkpoint"))):
        raise WorkdirError(
            f"No checkpoint in {str(directory)!r} can be restored "
            f"({'; '.join(failures) or 'its index file checkpoint is unreadable'}). Nothing "
            f"was changed; this run cannot go on from there (use another --workdir).")
    return None


def _checkpoint_state(directory):
    try:
        return tf.train.get_checkpoint_state(str(directory))
    except (ValueError, tf.errors.OpError):  # an empty or unreadable index file
        return None


def _restore_listed(checkpoint, state, check):
    """Tries the checkpoints `state` lists, newest first: (path restored or None,
    ["name: why" of each that failed])."""
    paths = list(state.all_model_checkpoint_paths) if state else []
    if state and state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    failures = []
    for path in reversed(paths):
        try:
            check(checkpoint.restore(path))
        # A truncated data file raises IndexError ("Read less bytes than requested").
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as err:
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            failures.append(f"{os.path.basename(path)}: {first_line[:200]}")
            continue
        return path, failures
    return None, failures


BEST_NAME = "best"  # WORKDIR/best/best-N: apart from checkpoints/, which the latest ones own


def best_dir(workdir):
    """Where a run keeps the checkpoint of its lowest validation BPC."""
    return Workdir(workdir).path / BEST_NAME


class Loaded(tuple):
    """`(model, vocab, config)` of a run, and `.checkpoint`: which checkpoint was restored,
    {"which": "latest" | "best" | "ckpt-N" (as asked), "checkpoint": its path, "step",
    "best_valid_bpc": the validation BPC that made it the best (None unless best)}."""

    def __new__(cls, model, vocab, config, checkpoint):
        loaded = super().__new__(cls, (model, vocab, config))
        loaded.checkpoint = checkpoint
        return loaded


def load_model(workdir, checkpoint="latest"):
    """The model of a work directory with the weights of `checkpoint`, its vocab, config.

    Args:
      checkpoint: "latest" (the newest checkpoint that loads), "best" (the lowest
        validation BPC the run has saved) or "ckpt-N" (the latest-checkpoint series'
        checkpoint of step N, if still kept).

    Returns:
      A `Loaded` (model, vocab, config), its `.checkpoint` naming what was restored.

    Raises:
      ArgumentError: `checkpoint` is none of those forms.
      WorkdirError: the run has no such checkpoint (the message says what it has).
      DataError: the run has no checkpoint at all.
    """
    which = _checkpoint_choice(checkpoint)
    workdir = Workdir(workdir)
    config = workdir.load_config()
    integrity.check_files(workdir)  # a hand-damaged file: one line naming it
    vocab = workdir.load_vocab()
    if vocab is None or not workdir.has_checkpoint():
        raise DataError(f"No checkpoint in {str(workdir.path)!r}: train first "
                                 f"(`tf-rnn train --workdir {workdir.path}`).")
    integrity.check_against_checkpoint(workdir, config, vocab)
    model = models.build_model(config, vocab.size)
    # The step (and a best's BPC) restored with the weights, not read from the files
    # after: a live trainer may have deleted them by then.
    recorded = {"step": tf.Variable(-1, dtype=tf.int64, trainable=False)}
    if which == BEST_NAME:  # a best holds the BPC it was kept for (run_state.BestCheckpoint)
        recorded["valid_bpc"] = tf.Variable(math.nan, dtype=tf.float64, trainable=False)
    checkpoint = lambda: tf.train.Checkpoint(model=model, **recorded)  # noqa: E731 (per try)
    check = lambda status: status.assert_existing_objects_matched().expect_partial()  # noqa
    if which == "latest":
        path = restore_newest(checkpoint, workdir.checkpoint_dir, check)
    elif which == BEST_NAME:
        if _checkpoint_state(best_dir(workdir)) is None:
            raise WorkdirError(_no_best(workdir, config))
        path = restore_newest(checkpoint, best_dir(workdir), check)
    else:
        path = _restore_numbered(checkpoint, workdir, which, check)
    bpc = recorded.get("valid_bpc")
    return Loaded(model, vocab, config, {
        "which": which, "checkpoint": path, "step": int(recorded["step"].numpy()),
        "best_valid_bpc": None if bpc is None else float(bpc.numpy())})


def _checkpoint_choice(checkpoint):
    if checkpoint in ("latest", BEST_NAME) or (isinstance(checkpoint, str) and
                                               re.fullmatch(r"ckpt-\d+", checkpoint)):
        return checkpoint
    raise ArgumentError(f"Received an invalid value for argument `checkpoint`, expected "
                        f"'best', 'latest' or 'ckpt-N' (N a step), got {checkpoint!r}.")


def _no_best(workdir, config):
    run = f"The run in {str(workdir.path)!r} has no best checkpoint"
    if not config.eval_every:
        return (f"{run}: it trains with eval_every=0, so no validation ran to choose one. "
                f"Train on with --set eval_every=N (a best is kept from the next "
                f"validation on), or use --checkpoint latest.")
    return (f"{run} yet: a best is written with the first checkpoint after a validation "
            f"(every {config.eval_every} steps; a run trained before tf_rnn kept one has "
            f"none until it validates again). Train it further, or use --checkpoint latest.")


def _restore_numbered(checkpoint, workdir, name, check):
    """Restores checkpoints/`name` (ckpt-N); its path."""
    directory = workdir.checkpoint_dir
    path = str(directory / name)
    if not os.path.isfile(path + ".index"):
        state = _checkpoint_state(directory)
        kept = [os.path.basename(p) for p in (state.all_model_checkpoint_paths if state
                                              else [])]
        best = _checkpoint_state(best_dir(workdir))
        if best is not None:
            kept.append(f"best ({os.path.basename(best.model_checkpoint_path)})")
        raise WorkdirError(
            f"No checkpoint {name} in {str(directory)!r}: the run keeps "
            f"{', '.join(kept) or 'none'} (the last keep_checkpoints ones). Pass one of "
            f"those to --checkpoint, or best or latest.")
    listed = types.SimpleNamespace(all_model_checkpoint_paths=[path],
                                   model_checkpoint_path=path)
    restored, failures = _restore_listed(checkpoint(), listed, check)
    if restored is None:
        raise WorkdirError(f"Checkpoint {name} in {str(directory)!r} cannot be restored "
                           f"({failures[0].split(': ', 1)[-1]}). Nothing was changed: use "
                           f"another --checkpoint.")
    return restored


def load_corpus_for(config, workdir, data=None, cache_dir=None, download_kwargs=None,
                    progress=True, same_vocab=False):
    """The corpus of a run, encoded with the vocabulary of the run it continues, if any.

    Args:
      same_vocab: for training: a `vocab=corpus` run continues only on text with exactly
        its saved characters (the corpus's own vocabulary must be the saved one).

    Raises:
      DataError: a bad corpus file; characters outside the vocabulary (with
        `unknown="error"`), named with their count, first position and the fixes.
      WorkdirError: a `vocab=corpus` run given a corpus with other characters.
    """
    saved = workdir.load_vocab() if workdir.has_checkpoint() else None
    vocab = saved or config.vocab
    options = dict(cache_dir=cache_dir, normalize=config.normalize,
                   download_kwargs=download_kwargs, progress=progress,
                   fractions=config.split_fractions)
    try:
        corpus = data_lib.load_corpus(data, vocab=vocab, unknown=config.unknown, **options)
    except DataError as err:
        if vocab == "corpus":
            raise
        try:  # only on this error path: read the text again, with its own characters
            own = data_lib.load_corpus(data, vocab="corpus", **options)
        except DataError:
            raise err from None
        message = _unknown_characters(own, saved, config.vocab == "corpus", workdir)
        if message is None:
            raise
        raise (WorkdirError if config.vocab == "corpus" else DataError)(
            message) from None
    if same_vocab and saved is not None and config.vocab == "corpus":
        used = np.zeros(saved.size, bool)
        for ids in (corpus.train, corpus.valid, corpus.test):
            used[ids] = True
        if not used.all():
            lacking = [c for c, u in zip(saved.chars, used) if not u]
            raise WorkdirError(
                f"The characters of {corpus.source} differ from the vocabulary of the run in "
                f"{str(workdir.path)!r} ({workdir.vocab_path.name}): the corpus lacks "
                f"{_show(lacking)}. A vocab=corpus run continues only on text with the same "
                f"characters: use the corpus it was trained on, or another --workdir.")
    return corpus


def corpus_record(data):
    """How run.json names the corpus `data`: None for text8, a shipped corpus's name
    (`tf_rnn.data.corpora`), else the file's absolute path."""
    name = corpora.named(data)
    if data is None or name == corpora.TEXT8:
        return None
    return name or os.path.abspath(os.path.expanduser(str(data)))


def _recorded_file(record):
    """The file a (non-None) record reads: a shipped corpus's, else the path itself."""
    return corpora.shipped_path(record) if record in corpora.SHIPPED else record


def run_info(data, corpus):
    """What run.json records of the corpus: `corpus_record(data)` and its digest."""
    record = corpus_record(data)
    if record is None:
        return {"data": None, "sha256": text8.TEXT8_SHA256}
    return {"data": record, "sha256": textio.file_sha256(_recorded_file(record))}


def run_data(workdir, data=None, doing="evaluating"):
    """The corpus `eval` reads: `data` if given, else the one recorded in run.json.

    Raises:
      DataError: the recorded corpus is gone (the message says where the path came from
        and how to pass --data).
    """
    if data is not None:
        return data
    workdir = Workdir(workdir)
    info = workdir.load_run_info()
    recorded = info.get("data")
    if recorded is None:
        return None  # text8
    recorded = _recorded_file(recorded)
    if not os.path.exists(recorded):
        raise DataError(
            f"The run in {str(workdir.path)!r} was trained on {recorded} (recorded in "
            f"{workdir.run_path.name}), which does not exist any more (or, if it was "
            f"recorded relative, from this directory): pass the corpus with --data FILE.")
    digest = info.get("sha256")
    if digest and textio.file_sha256(recorded) != digest:
        _log(f"Note: {recorded} (recorded in {workdir.run_path}) has changed since the run "
             f"was trained (SHA-256 differs); {doing} on it anyway.")
    return recorded


def training_data(workdir, data=None, allow_new_corpus=False):
    """The corpus `train` reads: for a run that has a checkpoint, the one it trained on.

    Without `data`, a resumed run continues on the corpus recorded in run.json (as
    `eval` and `sample` read it), never on text8 by default. `data` naming another
    corpus (another file's content, or a file for a text8 run) would go on training the
    weights on other text: refused unless `allow_new_corpus`. The same file moved
    elsewhere (same SHA-256) is the same corpus; a changed file at the recorded path
    gets a note.

    Raises:
      WorkdirError: `data` is another corpus than the run's (naming both and their
        SHA-256); DataError: the recorded corpus is gone.
    """
    workdir = Workdir(workdir)
    info = workdir.load_run_info() if workdir.has_checkpoint() else {}
    if not info:  # a new run (or one saved before run.json existed)
        return data
    recorded = info.get("data")
    record = corpus_record(data)
    if data is None or record == recorded:
        return run_data(workdir, doing="training")
    if allow_new_corpus:
        return data
    if record is not None and not os.path.isfile(_recorded_file(record)):
        return data  # a missing file: load_corpus says so
    digest = (text8.TEXT8_SHA256 if record is None
              else textio.file_sha256(_recorded_file(record)))
    saved = info.get("sha256")
    if digest == saved:
        return data
    trained_on = recorded or "text8 (text8.zip)"
    raise WorkdirError(
        f"The run in {str(workdir.path)!r} was trained on {trained_on} (SHA-256 {saved}), "
        f"but --data is {record or 'text8'} (SHA-256 {digest}): resuming would go on "
        f"training its weights on another corpus. Nothing was changed. Leave out --data to "
        f"continue on its own corpus, use a new --workdir for the new one, or pass "
        f"--allow-new-corpus to continue on it anyway.")


def _show(chars, limit=10):
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(repr(c) for c in chars[:limit]) + more


def _unknown_characters(own, saved, conflict, workdir):
    """The message for a corpus (`own`: encoded with its own characters) holding
    characters outside the saved vocabulary (None: text8's); None if it holds none."""
    vocab = saved or Vocabulary.text8()
    extra = [c for c in own.vocab.chars if c not in vocab.chars]
    if not extra:
        return None
    ids = np.concatenate([own.train, own.valid, own.test])
    bad = np.isin(ids, [own.vocab.chars.index(c) for c in extra])

    def found(outside):
        return (f"{int(bad.sum())} occurrence(s) of {len(extra)} character(s) outside "
                f"{outside}: {_show(extra)} (first at character {int(np.argmax(bad))})")

    run = f"the run in {str(workdir.path)!r}"
    if conflict:
        return (f"The characters of {own.source} differ from the vocabulary of {run} "
                f"({workdir.vocab_path.name}): the corpus has {found('it')}. A vocab=corpus "
                f"run continues only on text with the same characters: use the corpus it "
                f"was trained on, or another --workdir.")
    if saved is None:
        return (f"{own.source} has {found(f'the text8 alphabet {vocab.chars!r}')}. Choose a "
                f"mapping: --set unknown=space reads each as ' ', --set normalize=true "
                f"applies text8's normalisation (lowercase, digits spelled out, anything "
                f"else a space), or --set vocab=corpus uses the corpus's own characters.")
    return (f"{own.source} has {found(f'the vocabulary of {run} ({vocab.size} characters)')}"
            f". --set unknown=space reads each as ' ', or train a new run (another "
            f"--workdir) on this text.")
