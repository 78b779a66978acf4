"""The training loop shared by every character model.

`train(config, workdir, data)` loads the corpus, builds (or resumes) the run, and
loops over compiled truncated-BPTT steps with tqdm progress, TensorBoard summaries,
periodic validation and samples, checkpoints, and a divergence guard.
"""

import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
import tqdm

from tf_rnn import data as data_lib
from tf_rnn import diagnostics
from tf_rnn import distribute
from tf_rnn import models
from tf_rnn import sampling
from tf_rnn import steps as steps_lib
from tf_rnn import summaries
from tf_rnn.workdir import Workdir, WorkdirError


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite after every allowed recovery."""


class Run:
    """Everything a checkpoint holds: weights, optimizer slots and schedule position,
    step, data cursors, carried state, learning-rate scale, recoveries and RNG state."""

    def __init__(self, config, alphabet_size, workdir, strategy=None):
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():  # model, optimizer and checkpoint live in its scope
            self._build(config, alphabet_size, workdir)

    def _build(self, config, alphabet_size, workdir):
        keras.utils.set_random_seed(config.seed)
        self.config = config
        self.model = models.build_model(config, alphabet_size)
        self.lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
        self.optimizer = steps_lib.make_optimizer(config, self.lr_scale)
        self.optimizer.build(self.model.trainable_variables)
        B = config.batch_size
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.recoveries = tf.Variable(0, dtype=tf.int64, trainable=False, name="recoveries")
        self.cursors = tf.Variable(tf.zeros([B], tf.int64), trainable=False, name="cursors")
        self.state = tf.Variable(self.model.zero_state(B), trainable=False, name="state")
        self.rng = tf.random.Generator.from_seed(config.seed)
        # Sums of the logging interval under way (loss, grad norm, clipped steps, steps):
        # the first interval after a resume then averages the same steps as without one.
        self.log_totals = tf.Variable(tf.zeros([4], tf.float64), trainable=False,
                                      name="log_totals")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step,
            recoveries=self.recoveries, cursors=self.cursors, state=self.state,
            lr_scale=self.lr_scale, rng=self.rng, log_totals=self.log_totals)
        self.manager = distribute.checkpoint_manager(  # only the chief keeps its files
            self.strategy, self.checkpoint, workdir.checkpoint_dir, config.keep_checkpoints)

    def restore(self):
        """Restores the newest checkpoint that loads; returns its path (None: there is none).

        Raises:
          WorkdirError: there are checkpoints, but none of them loads.
        """
        return restore_newest(self.checkpoint, self.manager.directory,
                              lambda status: status.assert_existing_objects_matched())

    def save(self, step, cursor_positions, state, log_totals=(0.0, 0.0, 0.0, 0.0)):
        self.step.assign(step)
        self.cursors.assign(cursor_positions)
        self.log_totals.assign(log_totals)
        self.state.assign(distribute.gather_rows(self.strategy, state))  # (B, S), global
        return self.manager.save(checkpoint_number=step)


def restore_newest(checkpoint, directory, check):
    """Restores into `checkpoint` the newest checkpoint listed in `directory` that loads.

    A checkpoint that cannot be read back (a partial or corrupt file, one that does not
    fit) is reported and the one before it tried: a damaged save costs that save only.
    Saving itself is atomic (TensorFlow writes the files, then renames a new index in).

    Args:
      check: called with the restore status; raises if the checkpoint does not fit.

    Returns:
      The path restored, or None when the directory lists no checkpoint.

    Raises:
      WorkdirError: checkpoints are listed, but none of them loads.
    """
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except (ValueError, tf.errors.OpError):  # an empty or unreadable index file
        state = None
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
        if failures:
            _log(f"Skipped unreadable checkpoint(s) ({'; '.join(failures)}); restored {path}.")
        return path
    if failures or (state is None and os.path.isfile(os.path.join(directory, "checkpoint"))):
        raise WorkdirError(
            f"No checkpoint in {str(directory)!r} can be restored "
            f"({'; '.join(failures) or 'its index file checkpoint is unreadable'}). Nothing "
            f"was changed; this run cannot go on from there (use another --workdir).")
    return None


def load_model(workdir):
    """The model of a work directory with its latest weights, and its vocab and config."""
    workdir = Workdir(workdir)
    config = workdir.load_config()
    vocab = workdir.load_vocab()
    if vocab is None or not workdir.has_checkpoint():
        raise data_lib.DataError(f"No checkpoint in {str(workdir.path)!r}: train first "
                                 f"(`tf-rnn train --workdir {workdir.path}`).")
    model = models.build_model(config, vocab.size)
    restore_newest(tf.train.Checkpoint(model=model), workdir.checkpoint_dir,
                   lambda status: status.assert_existing_objects_matched().expect_partial())
    return model, vocab, config


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
                   download_kwargs=download_kwargs, progress=progress)
    try:
        corpus = data_lib.load_corpus(data, vocab=vocab, unknown=config.unknown, **options)
    except data_lib.DataError as err:
        if vocab == "corpus":
            raise
        try:  # only on this error path: read the text again, with its own characters
            own = data_lib.load_corpus(data, vocab="corpus", **options)
        except data_lib.DataError:
            raise err from None
        message = _unknown_characters(own, saved, config.vocab == "corpus", workdir)
        if message is None:
            raise
        raise (WorkdirError if config.vocab == "corpus" else data_lib.DataError)(
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


def _show(chars, limit=10):
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(repr(c) for c in chars[:limit]) + more


def _unknown_characters(own, saved, conflict, workdir):
    """The message for a corpus (`own`: encoded with its own characters) holding
    characters outside the saved vocabulary (None: text8's); None if it holds none."""
    vocab = saved or data_lib.Vocabulary.text8()
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


def total_steps(config, cursors):
    if config.epochs > 0:
        return max(1, math.ceil(config.epochs * cursors.steps_per_epoch))
    return config.steps


def _log(message):
    tqdm.tqdm.write(message, file=sys.stderr)


def train(config, workdir, data=None, *, cache_dir=None, download_kwargs=None,
          progress=True):
    """Trains (or resumes) the run in `workdir`; returns its final figures.

    Args:
      config: a validated `Config`.
      workdir: the run's directory; a checkpoint there is resumed.
      data: a corpus path, or None for text8 (downloaded into `cache_dir` if absent).

    Returns:
      {"step", "loss", "train_bpc", "valid_bpc", "chars_per_sec", "elapsed_sec",
       "recoveries", "sample", "workdir"}.
    """
    workdir = Workdir(workdir)
    workdir.check_compatible(config)
    strategy = distribute.strategy_for(config)  # before anything else runs TensorFlow
    if config.strategy != "default":
        _log(distribute.describe(strategy))
    corpus = load_corpus_for(config, workdir, data, cache_dir, download_kwargs, progress,
                             same_vocab=True)
    try:
        cursors = data_lib.BatchCursors(corpus.train, config.batch_size, config.num_unrollings)
    except data_lib.DataError as err:  # the one DataError of well-formed ids: too short
        raise data_lib.DataError(
            f"{corpus.source}: its training split (90%) is too short: {err}; use a longer "
            f"corpus, or lower --set batch_size / --set num_unrollings.") from None
    if config.deterministic:  # bitwise-reproducible kernels from here on (process-wide)
        tf.config.experimental.enable_op_determinism()

    run = Run(config, corpus.vocab.size, workdir, strategy)
    restored = run.restore()  # before any write: a failure leaves the workdir as it was
    workdir.create()
    workdir.save_vocab(corpus.vocab)
    workdir.save_config(config)
    workdir.save_run_info({"data": corpus.source if data is not None else None})
    if restored:
        cursors.set_state(run.cursors.numpy())
        if distribute.is_chief(strategy):  # events past the checkpoint: trained again now
            summaries.purge_after(workdir.events_dir, int(run.step.numpy()))
        _log(f"Resumed {workdir.path} at step {int(run.step.numpy())}.")
    else:
        run.save(0, cursors.get_state(), run.state)
    step, state = int(run.step.numpy()), tf.convert_to_tensor(run.state)
    train_step = distribute.make_train_step(
        strategy, run.model, run.optimizer, config.clip_norm, config.clip_value,
        jit_compile=config.jit_compile)
    eval_step = steps_lib.make_eval_step(run.model)
    generator = sampling.make_generator(run.model.step)
    diag = diagnostics.TrainingDiagnostics(config, run.model, strategy)  # diag_every
    writer = distribute.summary_writer(strategy, workdir.events_dir)  # no-op off the chief
    last = total_steps(config, cursors)
    window_chars = config.batch_size * config.num_unrollings
    totals = _new_totals(run.log_totals.numpy())
    pending = summaries.PendingSummaries()  # written just before each checkpoint
    bpc = text = None
    result = {"step": step, "loss": None, "train_bpc": None, "valid_bpc": None,
              "chars_per_sec": None, "recoveries": int(run.recoveries.numpy()),
              "sample": None, "workdir": str(workdir.path)}
    run_chars, run_time, started, warm = 0, 0.0, time.perf_counter(), False

    def validate():
        ids = corpus.valid[:config.eval_chars] if config.eval_chars else corpus.valid
        if len(ids) < 2:
            return None
        return steps_lib.evaluate(run.model, ids, config.eval_batch_size,
                                  config.num_unrollings, eval_step)["bpc"]

    def draw_sample():
        seed = int(run.rng.uniform([], maxval=2**31 - 1, dtype=tf.int64))
        return sampling.sample(run.model, corpus.vocab, "", config.sample_length,
                               seed=seed, generator=generator)[0]

    bar = tqdm.tqdm(total=last, initial=step, disable=not progress, unit="step",
                    dynamic_ncols=True, file=sys.stderr, desc="train")
    with writer.as_default(), bar:
        while step < last:
            t0 = time.perf_counter()
            window = cursors.next()
            measured = diag.measure(step + 1, last, window, state)  # before the update
            metrics, new_state = train_step(window[:, :-1], window[:, 1:], state)
            if not bool(metrics["finite"]):
                pending.discard()  # its steps are trained again from the checkpoint
                step, state = _recover(run, cursors, config, step)
                totals = _new_totals(run.log_totals.numpy())
                bar.n = step
                continue
            state = new_state
            step += 1
            loss = float(metrics["loss"])
            elapsed = time.perf_counter() - t0
            totals["loss"] += loss
            totals["grad_norm"] += float(metrics["grad_norm"])
            totals["clipped"] += int(metrics["clipped"])
            totals["n"] += 1
            totals["time"] += elapsed
            totals["timed"] += 1
            if warm:  # the first step of a process traces and compiles: not counted
                run_chars, run_time = run_chars + window_chars, run_time + elapsed
            warm = True
            bar.update(1)
            diag.write(pending, measured, step)
            if step % config.log_every == 0 or step == last:
                n = totals["n"]
                mean_loss = totals["loss"] / n
                cps = window_chars * totals["timed"] / max(totals["time"], 1e-9)
                lr = steps_lib.current_learning_rate(run.optimizer)
                pending.scalar("train/loss", mean_loss, step)
                pending.scalar("train/bpc", mean_loss / steps_lib.LN2, step)
                pending.scalar("train/learning_rate", lr, step)
                pending.scalar("train/grad_norm", totals["grad_norm"] / n, step)
                pending.scalar("train/clip_fraction", totals["clipped"] / n, step)
                pending.scalar("train/chars_per_sec", cps, step)
                bar.set_postfix(loss=f"{mean_loss:.3f}", bpc=f"{mean_loss / steps_lib.LN2:.3f}",
                                chars_s=f"{cps:,.0f}", refresh=False)
                result.update(loss=mean_loss, train_bpc=mean_loss / steps_lib.LN2)
                totals = _new_totals()
            final = step == last  # the final figures too go in before the last save
            if (config.eval_every and step % config.eval_every == 0) or final:
                bpc = validate()
                if bpc is not None:
                    pending.scalar("valid/bpc", bpc, step)
                    if not final:
                        _log(f"step {step}: valid bpc {bpc:.4f}")
            if (config.sample_every and step % config.sample_every == 0) or final:
                text = draw_sample()
                pending.text("samples/text", text, step)
                if not final:
                    _log(f"step {step} sample: {text!r}")
            if step % config.checkpoint_every == 0 or final:
                pending.write(writer)  # first: no event on disk runs ahead of a checkpoint
                run.save(step, cursors.get_state(), state, _saved_totals(totals))
        if text is None:  # a finished run, run again: its figures, nothing logged or saved
            bpc, text = validate(), draw_sample()
    result.update(step=step, valid_bpc=bpc, sample=text,
                  chars_per_sec=run_chars / run_time if run_time else None,
                  elapsed_sec=time.perf_counter() - started,
                  recoveries=int(run.recoveries.numpy()))
    return result


def _new_totals(saved=(0.0, 0.0, 0.0, 0.0)):
    """Sums over one logging interval: loss, grad norm, clipped steps and steps (from
    `Run.log_totals` after a restore), and this process's time over `timed` steps."""
    loss, grad_norm, clipped, n = (float(v) for v in saved)
    return {"loss": loss, "grad_norm": grad_norm, "clipped": int(clipped), "n": int(n),
            "time": 0.0, "timed": 0}


def _saved_totals(totals):
    return [totals["loss"], totals["grad_norm"], float(totals["clipped"]), float(totals["n"])]


def _recover(run, cursors, config, step):
    """Divergence guard: back to the last good checkpoint with a lower learning rate."""
    recoveries = int(run.recoveries.numpy()) + 1
    scale = float(run.lr_scale.numpy()) * config.recovery_lr_factor
    if recoveries > config.max_recoveries:
        raise TrainingDiverged(
            f"The loss became non-finite at step {step + 1} and stayed so after "
            f"{config.max_recoveries} restore(s) of the last good checkpoint, the learning "
            f"rate scaled by {config.recovery_lr_factor:g} each time (max_recoveries, "
            f"recovery_lr_factor). That checkpoint is kept in {run.manager.directory}: "
            f"train again with a lower --set learning_rate=... to continue from it.")
    path = run.restore()
    run.recoveries.assign(recoveries)
    run.lr_scale.assign(scale)
    cursors.set_state(run.cursors.numpy())
    restored = int(run.step.numpy())
    _log(f"Non-finite loss or gradient at step {step + 1}: weights not updated; restored "
         f"{path} (step {restored}) and set the learning-rate scale to {scale:g} "
         f"(recovery {recoveries}/{config.max_recoveries}).")
    return restored, tf.convert_to_tensor(run.state)
