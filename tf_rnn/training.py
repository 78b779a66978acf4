"""The training loop shared by every character model.

`train(config, workdir, data)` loads the corpus, builds (or resumes) the run, and
loops over compiled truncated-BPTT steps with tqdm progress, TensorBoard summaries,
periodic validation and samples, checkpoints, and a divergence guard.
"""

import math
import signal
import sys
import time

import keras
import tensorflow as tf
import tqdm

from tf_rnn import data as data_lib
from tf_rnn import diagnostics
from tf_rnn import distribute
from tf_rnn import integrity
from tf_rnn import models
from tf_rnn import preemption
from tf_rnn import sampling
from tf_rnn import steps as steps_lib
from tf_rnn import summaries
from tf_rnn import resources
from tf_rnn.runs import (  # noqa: F401  (load_model, run_data: part of this API)
    load_corpus_for, load_model, restore_newest, run_data, run_info, training_data)
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
        return preemption.save_checkpoint(self.manager, step)  # WriteFailed: disk full


def total_steps(config, cursors):
    if config.epochs > 0:
        return max(1, math.ceil(config.epochs * cursors.steps_per_epoch))
    return config.steps


def _log(message):
    tqdm.tqdm.write(message, file=sys.stderr)


def train(config, workdir, data=None, allow_new_corpus=False, **kwargs):
    """Trains (or resumes) the run in `workdir`, holding its lock; see `_train`.

    A resumed run continues on the corpus recorded in its run.json when `data` is None;
    `data` naming another corpus is refused unless `allow_new_corpus`
    (`runs.training_data`).

    Raises:
      WorkdirError: `data` is not the corpus the run was trained on.
      ModelTooLarge: the model cannot fit in this machine's memory (`tf_rnn.resources`).
      WorkdirBusy: another live process trains (or exports) in `workdir`.
      Preempted: SIGTERM or SIGINT stopped the run after a checkpoint at its step.
      WriteFailed: a file of the run could not be written (a full disk); the previous
        checkpoint is intact.
    """
    workdir = Workdir(workdir)
    integrity.check_files(workdir)
    workdir.check_compatible(config)
    strategy = distribute.strategy_for(config)  # cached: _train gets the same one
    # (after the strategy: MultiWorkerMirroredStrategy must come before any TF op)
    integrity.check_against_checkpoint(workdir, config, workdir.load_vocab())
    data = training_data(workdir, data, allow_new_corpus)
    if not distribute.is_chief(strategy):  # writes nothing: the chief holds the lock
        return _train(config, workdir, data, **kwargs)
    with preemption.WorkdirLock(workdir.path, "training"):
        return _train(config, workdir, data, **kwargs)


def _train(config, workdir, data=None, *, cache_dir=None, download_kwargs=None,
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
    resources.check_fits(config, corpus.vocab.size)  # before the model is built
    if config.deterministic:  # bitwise-reproducible kernels from here on (process-wide)
        tf.config.experimental.enable_op_determinism()

    run = Run(config, corpus.vocab.size, workdir, strategy)
    restored = run.restore()  # before any write: a failure leaves the workdir as it was
    last = total_steps(config, cursors)
    done = restored is not None and int(run.step.numpy()) >= last
    if done and int(run.step.numpy()) > last:
        raise WorkdirError(
            f"The run in {str(workdir.path)!r} is already at step {int(run.step.numpy())}, "
            f"past the {last} steps asked (--steps / steps / epochs): nothing to train, "
            f"nothing was changed. Ask for more steps to continue it; `tf-rnn eval` and "
            f"`tf-rnn sample` use its latest checkpoint.")
    if not done:  # a finished run, run again, only reports its figures: nothing written
        workdir.create()
        workdir.save_vocab(corpus.vocab)
        workdir.save_config(config)
        workdir.save_run_info(run_info(data, corpus))
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
        jit_compile=config.jit_compile, seed=config.seed)
    eval_step = steps_lib.make_eval_step(run.model)
    generator = sampling.make_generator(run.model.step)
    diag = diagnostics.TrainingDiagnostics(config, run.model, strategy)  # diag_every
    writer = (tf.summary.create_noop_writer() if done else  # no-op off the chief too
              distribute.summary_writer(strategy, workdir.events_dir))
    window_chars = config.batch_size * config.num_unrollings
    totals = _new_totals(run.log_totals.numpy())
    pending = summaries.PendingSummaries()  # written just before each checkpoint
    bpc = text = None
    result = {"step": step, "loss": None, "train_bpc": None, "valid_bpc": None,
              "chars_per_sec": None, "recoveries": int(run.recoveries.numpy()),
              "sample": None, "workdir": str(workdir.path), "jit_compile": None,
              "first_step_sec": None}
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

    def save_now():  # SIGTERM on any worker of a cluster: all save this step
        preemption.write_events(pending, writer, workdir.events_dir,
                                run.manager.latest_checkpoint)
        run.save(step, cursors.get_state(), state, _saved_totals(totals))

    def stop_now():
        raise preemption.Preempted(signal.SIGTERM, (
            f"stopped by SIGTERM on a worker at step {step}: every worker saved "
            f"checkpoint ckpt-{step}. Run the same command on every worker to resume."))

    cluster = distribute.preemption_handler(strategy, save_now, stop_now)
    # SIGTERM / SIGINT: checkpoint this step, then stop (a cluster: TensorFlow's handler)
    stop = preemption.StopSignals(() if cluster else preemption.STOP_SIGNALS)

    bar = tqdm.tqdm(total=last, initial=step, disable=not progress, unit="step",
                    dynamic_ncols=True, file=sys.stderr, desc="train")
    with writer.as_default(), bar, stop:
        while step < last:
            window = cursors.next()
            measured = diag.measure(step + 1, last, window, state)  # before the update
            # chars/s times the train step alone: not the data, diagnostics, validation,
            # samples or saves (bool() waits for the step's result).
            t0 = time.perf_counter()
            metrics, new_state = train_step(window[:, :-1], window[:, 1:], state)
            finite = bool(metrics["finite"])
            elapsed = time.perf_counter() - t0
            if not finite:
                pending.discard()  # its steps are trained again from the checkpoint
                step, state = _recover(run, cursors, config, step)
                totals = _new_totals(run.log_totals.numpy())
                bar.n = step
                continue
            state = new_state
            step += 1
            loss = float(metrics["loss"])
            totals["loss"] += loss
            totals["grad_norm"] += float(metrics["grad_norm"])
            totals["clipped"] += int(metrics["clipped"])
            totals["n"] += 1
            if warm:  # the first step of a process traces and compiles: not counted
                run_chars, run_time = run_chars + window_chars, run_time + elapsed
                totals["time"] += elapsed
                totals["timed"] += 1
            else:
                result["first_step_sec"] = elapsed  # mostly tracing and compiling
            warm = True
            bar.update(1)
            diag.write(pending, measured, step)
            if step % config.log_every == 0 or step == last:
                n = totals["n"]
                mean_loss = totals["loss"] / n
                # None: the interval held only the first (compiling) step
                cps = (window_chars * totals["timed"] / max(totals["time"], 1e-9)
                       if totals["timed"] else None)
                lr = steps_lib.current_learning_rate(run.optimizer)
                pending.scalar("train/loss", mean_loss, step)
                pending.scalar("train/bpc", mean_loss / steps_lib.LN2, step)
                pending.scalar("train/learning_rate", lr, step)
                pending.scalar("train/grad_norm", totals["grad_norm"] / n, step)
                pending.scalar("train/clip_fraction", totals["clipped"] / n, step)
                if cps is not None:
                    pending.scalar("train/chars_per_sec", cps, step)
                shown = "-" if cps is None else f"{cps:,.0f}"
                bar.set_postfix(loss=f"{mean_loss:.3f}", bpc=f"{mean_loss / steps_lib.LN2:.3f}",
                                chars_s=shown, refresh=False)
                result.update(loss=mean_loss, train_bpc=mean_loss / steps_lib.LN2)
                if not progress:  # no bar: one line per log_every steps (a log file's)
                    _log(f"step {step}/{last}: loss {mean_loss:.4f} bpc "
                         f"{mean_loss / steps_lib.LN2:.4f} chars/s {shown} lr {lr:.4g}")
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
            if step % config.checkpoint_every == 0 or final or stop.signum:
                # Events first: no event on disk runs ahead of a checkpoint.
                preemption.write_events(pending, writer, workdir.events_dir,
                                        run.manager.latest_checkpoint)
                path = run.save(step, cursors.get_state(), state, _saved_totals(totals))
                if stop.signum and not final:
                    raise preemption.Preempted(stop.signum, (
                        f"stopped by {preemption.signal_name(stop.signum)} at step {step}: "
                        f"checkpoint {path} written, TensorBoard events flushed. Run the "
                        f"same command to resume."))
            if cluster is not None and not final:
                cluster.save_checkpoint_if_preempted()
        if text is None:  # a finished run, run again: its figures, nothing logged or saved
            bpc, text = validate(), draw_sample()
    uses_xla = getattr(train_step, "uses_xla", None)
    result.update(step=step, valid_bpc=bpc, sample=text,
                  jit_compile=uses_xla() if uses_xla and warm else config.jit_compile,
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
