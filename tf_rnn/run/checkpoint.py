"""What a checkpoint of a training run holds (`Run`), writing it, and rolling it back.

A checkpoint holds the weights, the optimizer's slots and schedule position, the step,
the data cursors, the carried state, the learning-rate scale and recoveries of the
divergence guard, the RNG of the samples, the sums of the logging interval under way
(`IntervalSums`) and the best validation BPC so far with its step: a killed run resumes
as if it had never stopped, and makes the same "is this the best?" decisions. The
weights of that best live beside the latest checkpoints (`BestCheckpoint`). A write that
fails (a full disk, a file-size limit) becomes one `WriteFailed` error that says what is
intact (`save_checkpoint`, `write_events`). What the events hold of a step, a finished
run's figures, is read back by `recorded_figures`.
"""

import math
import os
import pathlib
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management

from tf_rnn import models
from tf_rnn.engine import distribute, steps as steps_lib
from tf_rnn.run import reading
from tf_rnn.run.directory import write_failed
from tf_rnn.run.reading import restore_newest


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite after every allowed recovery."""


class Run:
    """Everything a checkpoint holds: weights, optimizer slots and schedule position,
    step, data cursors, carried state, learning-rate scale, recoveries, RNG state, and
    the best validation BPC with its step (+inf and -1 before the first validation), the
    schedule's total steps and the training seconds of a time budget."""

    def __init__(self, config, alphabet_size, workdir, strategy=None):
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():  # model, optimizer and checkpoint live in its scope
            self._build(config, alphabet_size, workdir)

    def _build(self, config, alphabet_size, workdir):
        keras.utils.set_random_seed(config.seed)
        self.config = config
        self.model = models.build_model(config, alphabet_size)
        self.lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
        # The schedule's last step (the steps asked), the seconds a time budget has
        # spent and the fraction of it that the schedule reads (tf_rnn.train.budget; not
        # saved: the seconds give it). `budget_steps` is kept so that checkpoints of
        # earlier versions, which fixed a budget's last step from a pace, still load.
        self.total_steps = tf.Variable(config.steps, dtype=tf.int64, trainable=False,
                                       name="total_steps")
        self.budget_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                        name="budget_steps")
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                         name="train_seconds")
        self.budget_progress = steps_lib.budget_progress(config)
        self.optimizer = steps_lib.make_optimizer(config, self.lr_scale, self.total_steps,
                                                  self.budget_progress)
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
        self.best_bpc = tf.Variable(math.inf, dtype=tf.float64, trainable=False,
                                    name="best_bpc")
        self.best_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_step")
        parts = dict(model=self.model, optimizer=self.optimizer, step=self.step,
                     recoveries=self.recoveries, cursors=self.cursors, state=self.state,
                     lr_scale=self.lr_scale, rng=self.rng, log_totals=self.log_totals)
        self.checkpoint = tf.train.Checkpoint(**parts, best_bpc=self.best_bpc,
                                              best_step=self.best_step,
                                              total_steps=self.total_steps,
                                              budget_steps=self.budget_steps,
                                              train_seconds=self.train_seconds)
        # A restore must match every part (a checkpoint that does not fit is refused),
        # but one written before the best or the budget was kept lacks best_*,
        # total_steps, budget_steps and train_seconds: checked without them.
        self._parts = tf.train.Checkpoint(**parts)
        self.manager = distribute.checkpoint_manager(  # only the chief keeps its files
            self.strategy, self.checkpoint, workdir.checkpoint_dir, config.keep_checkpoints)
        self.best = BestCheckpoint(self.strategy, self.model, self.best_step, self.best_bpc,
                                   reading.best_dir(workdir))

    def restore(self):
        """Restores the newest checkpoint that loads; returns its path (None: there is none).

        Raises:
          WorkdirError: there are checkpoints, but none of them loads.
        """
        path = restore_newest(self._parts, self.manager.directory,
                              lambda status: status.assert_existing_objects_matched())
        if path:  # then the whole: best_* and the budget's (absent in an older one: no
            # best yet, no budget measured, no time counted), save_counter
            self.checkpoint.restore(path).expect_partial()
            self.best.keep_only(int(self.best_step.numpy()))
        return path

    def keep_if_best(self, step, bpc):
        """Records validation BPC `bpc` at `step`; if it is the lowest so far, its
        weights are held to be written with the next checkpoint. Returns whether it was."""
        if not bpc < float(self.best_bpc.numpy()):  # not lower (or NaN): nothing changes
            return False
        self.best_bpc.assign(bpc)
        self.best_step.assign(step)
        self.best.hold()
        return True

    def save(self, step, cursor_positions, state, log_totals=(0.0, 0.0, 0.0, 0.0)):
        self.step.assign(step)
        self.cursors.assign(cursor_positions)
        self.log_totals.assign(log_totals)
        self.state.assign(distribute.gather_rows(self.strategy, state))  # (B, S), global
        # The best first: a crash before ckpt-N leaves a best-M newer than the checkpoint
        # resumed from, which the resume drops (and finds again); never the reverse.
        self.best.write_held(self.manager.latest_checkpoint)  # WriteFailed: disk full
        path = save_checkpoint(self.manager, step)  # WriteFailed: disk full
        self.best.keep_only(int(self.best_step.numpy()))  # ckpt-N records it: older go
        return path

    def roll_back(self, failed_step):
        """Restores the last good checkpoint and scales the learning rate by
        `recovery_lr_factor` (the divergence guard); returns the path restored.

        Raises:
          TrainingDiverged: `max_recoveries` roll-backs were already spent.
        """
        config = self.config
        recoveries = int(self.recoveries.numpy()) + 1
        scale = float(self.lr_scale.numpy()) * config.recovery_lr_factor
        if recoveries > config.max_recoveries:
            raise TrainingDiverged(
                f"The loss became non-finite at step {failed_step} and stayed so after "
                f"{config.max_recoveries} restore(s) of the last good checkpoint, the "
                f"learning rate scaled by {config.recovery_lr_factor:g} each time "
                f"(max_recoveries, recovery_lr_factor). That checkpoint is kept in "
                f"{self.manager.directory}: train again with a lower --set "
                f"learning_rate=... to continue from it.")
        path = self.restore()
        self.recoveries.assign(recoveries)
        self.lr_scale.assign(scale)
        return path


class BestCheckpoint:
    """The weights of a run's lowest validation BPC, as WORKDIR/best/best-STEP.

    A validation that sets a new best holds a copy of the weights (`hold`); the next
    save writes them (`write_held`) just before ckpt-N, whose `best_step` then records
    them, and only after ckpt-N is safe does the previous best go (`keep_only`). So a
    crash anywhere leaves the best that the latest checkpoint records, on disk and
    listed; a best written after that checkpoint (the crash came between the two) is
    dropped when the run resumes from it, which then decides again from its own
    record. Each write is TensorFlow's (files written aside, then renamed) followed by
    an atomic rewrite of best/checkpoint, the index readers follow (`reading.load_model`).

    A best-STEP holds the model's variables, `step` and `valid_bpc`; no optimizer
    slots: it is read, never resumed from.
    """

    def __init__(self, strategy, model, step, bpc, directory):
        self.strategy, self.model, self.directory = strategy, model, str(directory)
        self.checkpoint = tf.train.Checkpoint(model=model, step=step, valid_bpc=bpc)
        # write() saves save_counter only once it exists; readers (reading.load_model)
        # match it, as in every CheckpointManager checkpoint.
        self.checkpoint.save_counter  # noqa: B018 (creates it)
        self.step = step
        self.held = None  # the weights of a best not written yet: [arrays of variables]

    def hold(self):
        self.held = [v.numpy() for v in self.model.variables]

    def write_held(self, latest):
        """Writes the held best (if any) as best-STEP and lists it beside the previous.

        Raises:
          WriteFailed: it could not be written; the previous best and `latest` are intact.
        """
        if self.held is None:
            return
        name = f"best-{int(self.step.numpy())}"
        variables = self.model.variables
        current = [v.numpy() for v in variables]
        for variable, value in zip(variables, self.held):  # the best's weights, saved,
            variable.assign(value)
        try:
            self._write(name)
        except (tf.errors.OpError, OSError) as err:
            self._remove(lambda entry: entry == name)
            then = (f"The latest checkpoint {os.path.basename(latest)} and the previous "
                    f"best are intact: free some space and run the same command to resume."
                    if latest else "Free some space and run the command again.")
            raise write_failed(f"the best checkpoint {name} to", self.directory, err,
                               sum(v.nbytes for v in self.held), then) from None
        finally:
            for variable, value in zip(variables, current):  # and put back, to the bit
                variable.assign(value)
        self.held = None

    def _write(self, name):
        if not distribute.is_chief(self.strategy):  # takes part in the save, keeps nothing
            scratch = tempfile.mkdtemp(prefix="tf_rnn-best-")
            try:
                self.checkpoint.write(os.path.join(scratch, name))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        os.makedirs(self.directory, exist_ok=True)
        self.checkpoint.write(os.path.join(self.directory, name))
        self._list([n for n in self._listed() if n != name] + [name])

    def keep_only(self, step):
        """Drops every best but best-`step` (-1: all), the index first. The held best
        goes too: after a restore it belongs to a run that is gone."""
        self.held = None
        if not distribute.is_chief(self.strategy) or not os.path.isdir(self.directory):
            return
        keep = f"best-{step}"
        if not os.path.isfile(os.path.join(self.directory, keep + ".index")):
            keep = None
        index = os.path.join(self.directory, "checkpoint")
        if keep is None:
            if os.path.exists(index):
                os.unlink(index)
        elif self._listed() != [keep]:
            self._list([keep])
        self._remove(lambda entry: entry != keep)
        if not os.listdir(self.directory):
            os.rmdir(self.directory)

    def _list(self, names):
        """Rewrites best/checkpoint (atomically) to list `names`, the last the newest;
        paths relative, as CheckpointManager writes them (a moved run still reads)."""
        directory = os.path.abspath(self.directory)  # (TF relativises a relative one twice)
        paths = [os.path.join(directory, n) for n in names]
        checkpoint_management.update_checkpoint_state_internal(
            directory, paths[-1], paths, save_relative_paths=True)

    def _listed(self):
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except (ValueError, tf.errors.OpError):  # an unreadable index: rewritten
            state = None
        return [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []

    def _remove(self, doomed):
        """Removes the files of each best-STEP whose name `doomed(name)` selects."""
        if not os.path.isdir(self.directory):
            return
        for entry in os.listdir(self.directory):
            match = re.match(r"(best-\d+)(\.|_temp|$)", entry)
            if match and doomed(match.group(1)):
                target = os.path.join(self.directory, entry)
                shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)


def _checkpoint_bytes(directory, path):
    """The size of the checkpoint `path`'s files (its .index and .data-*), or None."""
    if not path:
        return None
    prefix = os.path.basename(path)
    sizes = [os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
             if f.startswith(prefix + ".")]
    return sum(sizes) or None


def save_checkpoint(manager, step):
    """`manager.save(checkpoint_number=step)`; a failed write becomes one clear error.

    TensorFlow writes a checkpoint into `ckpt-N_temp/` and renames it into place before
    it names it in the index, so the previous checkpoint is untouched by a failure; the
    partial files are removed here to give the space back.

    Raises:
      WriteFailed: the checkpoint could not be written (a full disk, a size limit).
    """
    directory = str(manager.directory)
    previous = manager.latest_checkpoint
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as err:
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.startswith(f"ckpt-{step}_temp") or name.startswith(f"ckpt-{step}."):
                    target = os.path.join(directory, name)
                    shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
        then = (f"The previous checkpoint {os.path.basename(previous)} is intact: free some "
                f"space and run the same command to resume from it." if previous else
                "No checkpoint was written: free some space and run the command again.")
        raise write_failed(f"checkpoint ckpt-{step} to", directory, err,
                           _checkpoint_bytes(directory, previous), then) from None


def write_events(pending, writer, events_dir, latest_checkpoint):
    """`pending.write(writer)`; a failed write becomes one clear error.

    Raises:
      WriteFailed: the event file could not be written. Events past the checkpoint the
        next run resumes from are dropped by that run (`summaries.purge_after`).
    """
    try:
        pending.write(writer)
    except (tf.errors.OpError, OSError) as err:
        then = (f"The last checkpoint {os.path.basename(latest_checkpoint)} is intact: "
                f"free some space and run the same command to resume from it."
                if latest_checkpoint else "")
        raise write_failed("TensorBoard events to", events_dir, err,
                           pending.approx_bytes(), then) from None


# The figures of a step that its events hold: tag -> key of `training.train`'s Returns.
RECORDED = {"train/loss": "loss", "valid/bpc": "valid_bpc", "samples/text": "sample"}


def recorded_figures(events_dir, step):
    """{"loss", "valid_bpc", "sample"} as the event files in `events_dir` hold them at
    `step`; a key is absent where no event holds its figure.

    A scalar is stored as a float32: it comes back as the shortest decimal of that
    float32 (3.2799437 for a loss of 3.2799437046051025), all that is known of it.
    """
    found = {}
    directory = pathlib.Path(events_dir)
    for path in sorted(directory.glob("*tfevents*")) if directory.is_dir() else ():
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value if event.step == step else ():
                    if value.tag in RECORDED:
                        found[RECORDED[value.tag]] = _figure(tf.make_ndarray(value.tensor))
        except tf.errors.DataLossError:  # a record cut short by a kill: what came before
            pass
    return found


def _figure(array):
    if array.dtype == object:  # a text summary: bytes
        return array.item().decode("utf-8")
    return float(str(np.float32(array)))


class IntervalSums:
    """Sums over one logging interval.

    Loss, gradient norm, clipped steps and steps are part of the run (a checkpoint holds
    them as `Run.log_totals`), so the first interval after a resume averages the same
    steps as without one. The time is this process's own, over its timed steps: the
    first step of a process (tracing and compiling) is not timed, unless it is all the
    interval holds (a resume just before a log step): then its time is what there is,
    and the TensorBoard curve keeps its point.
    """

    def __init__(self, saved=(0.0, 0.0, 0.0, 0.0)):
        loss, grad_norm, clipped, n = (float(v) for v in saved)
        self.loss, self.grad_norm, self.clipped, self.n = loss, grad_norm, int(clipped), int(n)
        self.time, self.timed = 0.0, 0
        self.untimed = None  # the first step's time, if this interval holds it

    def add(self, metrics, elapsed, timed=True):
        """Counts one finite step that took `elapsed` seconds (not `timed`: compiling)."""
        self.loss += float(metrics["loss"])
        self.grad_norm += float(metrics["grad_norm"])
        self.clipped += int(metrics["clipped"])
        self.n += 1
        if timed:
            self.time, self.timed = self.time + elapsed, self.timed + 1
        else:
            self.untimed = elapsed

    def saved(self):
        """What a checkpoint holds of the interval (float64[4])."""
        return [self.loss, self.grad_norm, float(self.clipped), float(self.n)]

    def chars_per_sec(self, window_chars):
        """Training speed over the timed steps (the untimed one if there is no other)."""
        if self.timed:
            return window_chars * self.timed / max(self.time, 1e-9)
        return window_chars / max(self.untimed, 1e-9)
