"""One process's training of a run: `Trainer`, whose loop (`steps`) reads top to
bottom: fetch a window, measure, step, recover or advance, then one line per periodic
job (log, validate, sample, checkpoint-and-maybe-stop, cluster poll), each a short
method. `Run` is what a checkpoint holds and `IntervalSums` the sums of one logging
interval (`tf_rnn.run.checkpoint`); `tf_rnn.train.training` opens a run and hands it a Trainer.
"""

import contextlib
import signal
import sys
import time

import tensorflow as tf
import tqdm

from tf_rnn import data as data_lib
from tf_rnn.base import logs
from tf_rnn.base.errors import WorkdirError
from tf_rnn.engine import distribute, sampling, steps as steps_lib, summaries
from tf_rnn.inspect import diagnostics
from tf_rnn.run import checkpoint, preemption
from tf_rnn.run.checkpoint import IntervalSums, Run
from tf_rnn.run.reading import run_info
from tf_rnn.train.budget import TimeBudget


def _log(message):
    logs.note(message)


class Trainer:
    """One process's training of a run: the loop and its periodic jobs.

    Invariants between steps: `step` updates have been applied to `run`'s weights;
    `state` is the carried state after window `step` and `cursors` point at window
    `step + 1`; `pending` holds the summaries of the steps after the last checkpoint,
    written just before the next one, so no event on disk runs ahead of a checkpoint.
    """

    def __init__(self, config, workdir, data, corpus, strategy, progress=True, timer=None):
        self.config, self.workdir, self.data, self.corpus = config, workdir, data, corpus
        self.strategy, self.progress, self.timer = strategy, progress, timer
        self.cursors = data_lib.training_cursors(config, corpus)
        if config.deterministic:  # bitwise-reproducible kernels from here on (process-wide)
            tf.config.experimental.enable_op_determinism()
        self.run = Run(config, corpus.vocab.size, workdir, strategy)
        restored = self.run.restore()  # before any write: a failure leaves it as it was
        self.step = int(self.run.step.numpy())
        self.last = data_lib.total_steps(config, self.cursors)
        self.budget = self._keep_budget(restored)
        self.done = restored is not None and self.step >= self.last
        self._check_not_past_the_end()
        self._open(restored)
        self.state = tf.convert_to_tensor(self.run.state)
        self.train_step = distribute.make_train_step(
            strategy, self.run.model, self.run.optimizer, config.clip_norm,
            config.clip_value, jit_compile=config.jit_compile, seed=config.seed)
        self.eval_step = steps_lib.make_eval_step(self.run.model)
        self.generator = sampling.make_generator(self.run.model.step)
        self.diag = diagnostics.TrainingDiagnostics(config, self.run.model, strategy)
        self.writer = (tf.summary.create_noop_writer() if self.done else  # off the chief too
                       distribute.summary_writer(strategy, workdir.events_dir))
        self.window_chars = config.batch_size * config.num_unrollings
        self.sums = IntervalSums(self.run.log_totals.numpy())
        self.pending = summaries.PendingSummaries()
        self.loss = self.bpc = self.text = self.first_step_sec = None
        self.validated = None  # (step, valid BPC) of the latest validation
        self._loop = None  # train_while's generator of steps
        self.run_chars, self.run_time, self.started = 0, 0.0, time.perf_counter()
        self.cluster = distribute.preemption_handler(strategy, self._save_now, self._stop_now)
        # SIGTERM / SIGINT: checkpoint this step, then stop (a cluster: TensorFlow's handler)
        self.stop = preemption.StopSignals(() if self.cluster else preemption.STOP_SIGNALS)
        # A budget's bar counts its seconds: its end is known from the start, a step count
        # is not. None for zero steps.
        self.bar = tqdm.tqdm(
            total=round(self.budget.seconds) if self.budget else self.last,
            initial=round(self.budget.spent()) if self.budget else self.step,
            unit="s" if self.budget else "step", disable=not progress or self.done,
            dynamic_ncols=True, file=sys.stderr, desc="train")

    def _keep_budget(self, restored):
        """The run's TimeBudget (None without `budget_minutes`) on the seconds its
        checkpoint saved; the schedule ends at the steps asked or the budget's end,
        whichever comes first (`tf_rnn.train.budget`)."""
        self.run.total_steps.assign(self.last)
        if self.config.budget_minutes <= 0:
            return None
        budget = TimeBudget(self.config.budget_minutes, self.run.budget_progress,
                            float(self.run.train_seconds.numpy()), self.timer)
        if restored and budget.finished(int(self.run.budget_steps.numpy()), self.step):
            self.last = min(self.last, self.step)  # a longer budget goes on
        return budget

    def _check_not_past_the_end(self):
        if self.done and self.step > self.last:
            raise WorkdirError(
                f"The run in {str(self.workdir.path)!r} is already at step {self.step}, "
                f"past the {self.last} steps asked (--steps / steps / epochs): nothing to "
                f"train, nothing was changed. Ask for more steps to continue it; `tf-rnn "
                f"eval` and `tf-rnn sample` use its latest checkpoint.")

    def _open(self, restored):
        """Writes the run's files (a finished run, run again, writes nothing) and puts
        the cursors where the checkpoint left them, or saves the step-0 checkpoint."""
        if not self.done:
            self.workdir.create()
            self.workdir.save_vocab(self.corpus.vocab)
            self.workdir.save_config(self.config)
            self.workdir.save_run_info(run_info(self.data, self.corpus))
        if restored:
            self.cursors.set_state(self.run.cursors.numpy())
            if distribute.is_chief(self.strategy):  # events past the checkpoint: trained again
                summaries.purge_after(self.workdir.events_dir, self.step)
            _log(f"The run in {self.workdir.path} is already at step {self.step}, the last "
                 f"asked: nothing to train or change; its recorded figures follow."
                 if self.done else f"Resumed {self.workdir.path} at step {self.step}.")
        else:
            self.run.save(0, self.cursors.get_state(), self.run.state)

    @property
    def final(self):
        """The last step is done: its figures go in before the last save."""
        return self.step == self.last

    def due(self, every):
        """Whether a job run every `every` steps (0: never) is due now, or it is the end."""
        return (bool(every) and self.step % every == 0) or self.final

    def train(self):
        """Trains up to the last step; returns the run's figures (`train`'s Returns).

        SIGTERM / SIGINT are held from the first step to the figures: one during the
        last step's validation, sample or save, or after it, stops the run as one
        between steps does, once that step's checkpoint is on disk."""
        with self.stop:
            with self.writer.as_default(), self.bar:
                for _ in self.steps():
                    pass
                figures = self.figures()
            if self.stop.signum:
                raise self._stopped()
        return figures

    def train_while(self, going):
        """Trains while `going()` holds after a step: one turn of a run trained in turns
        with others (`experiments.quality`); True once the run has ended."""
        if self._loop is None:
            self._loop = self.steps()
        ended = True
        with self.stop:
            with self.writer.as_default():
                for _ in self._loop:
                    if not going():
                        ended = False
                        break
            if self.stop.signum:
                raise self._stopped()
        return ended

    def steps(self):
        """The loop (none for a finished run, run again), a generator: the step after
        each one."""
        if self.budget and not self.done:  # a finished run's minutes are its own
            self.budget.start()
        while self.step < self.last:
            if self.budget:
                self.budget.update()  # the fraction spent: the rate of this step
            window = self.cursors.next()
            measured = self.diag.measure(self.step + 1, self.last, window, self.state)
            metrics, new_state, elapsed = self._timed_step(window)
            if not bool(metrics["finite"]):
                self._recover()
                continue
            self._advance(metrics, new_state, elapsed)
            self._keep_to_budget()
            self.diag.write(self.pending, measured, self.step)
            self._log_if_due()
            self._validate_if_due()
            self._sample_if_due()
            self._checkpoint_if_due()
            self._poll_cluster()
            yield self.step

    def figures(self):
        """The run's figures once its loop has ended (a finished run, run again: those
        its events recorded, nothing logged or saved)."""
        if self.done:
            self._take_recorded_figures()
        return self._figures()

    def _timed_step(self, window):
        """One train step; the time it took, the train step alone: not the data,
        diagnostics, validation, samples or saves (bool() waits for its result)."""
        t0 = time.perf_counter()
        metrics, new_state = self.train_step(window[:, :-1], window[:, 1:], self.state)
        bool(metrics["finite"])
        return metrics, new_state, time.perf_counter() - t0

    def _advance(self, metrics, new_state, elapsed):
        """Takes a finite step's result: the state carried, the step counted and timed
        (the first step of a process traces and compiles: not timed)."""
        self.state, self.step = new_state, self.step + 1
        warm = self.first_step_sec is not None
        self.sums.add(metrics, elapsed, timed=warm)
        if warm:
            self.run_chars, self.run_time = self.run_chars + self.window_chars, self.run_time + elapsed
        else:
            self.first_step_sec = elapsed  # mostly tracing and compiling
        self._show_progress()

    def _show_progress(self):
        seen = min(round(self.budget.spent(), 1), self.bar.total) if self.budget else self.step
        self.bar.update(seen - self.bar.n)

    def _keep_to_budget(self):
        """Under a time budget: this step is the last once the clock is spent (its
        validation, sample and checkpoint follow, in the time kept for them)."""
        if self.budget is None or not self.budget.exhausted() or self.step >= self.last:
            return
        self.last = self.step
        self.run.budget_steps.assign(self.step)  # the step this budget ended at
        _log(f"{self.budget.describe()}: step {self.step} is the last, at learning rate "
             f"{steps_lib.current_learning_rate(self.run.optimizer):.3g}.")

    def _job(self, name):
        """A periodic job, timed by the budget (which keeps time for the last one)."""
        return self.budget.job(name) if self.budget else contextlib.nullcontext()

    def _recover(self):
        """Divergence guard: back to the last good checkpoint with a lower learning
        rate; the pending steps are trained again from there."""
        failed = self.step + 1
        self.pending.discard()
        path = self.run.roll_back(failed)
        self.cursors.set_state(self.run.cursors.numpy())
        self.step, self.state = int(self.run.step.numpy()), tf.convert_to_tensor(self.run.state)
        self.sums = IntervalSums(self.run.log_totals.numpy())
        self._show_progress()
        _log(f"Non-finite loss or gradient at step {failed}: weights not updated; "
             f"restored {path} (step {self.step}) and set the learning-rate scale to "
             f"{float(self.run.lr_scale.numpy()):g} (recovery "
             f"{int(self.run.recoveries.numpy())}/{self.config.max_recoveries}).")

    def _log_if_due(self):
        if not self.due(self.config.log_every):
            return
        sums, step, LN2 = self.sums, self.step, steps_lib.LN2
        self.loss = sums.loss / sums.n
        cps = sums.chars_per_sec(self.window_chars)
        lr = steps_lib.current_learning_rate(self.run.optimizer)
        for tag, value in (("train/loss", self.loss), ("train/bpc", self.loss / LN2),
                           ("train/learning_rate", lr),
                           ("train/grad_norm", sums.grad_norm / sums.n),
                           ("train/clip_fraction", sums.clipped / sums.n),
                           ("train/chars_per_sec", cps)):
            self.pending.scalar(tag, value, step)
        self.bar.set_postfix(loss=f"{self.loss:.3f}", bpc=f"{self.loss / LN2:.3f}",
                             chars_s=f"{cps:,.0f}", refresh=False)
        if not self.progress:  # no bar: one line per log_every steps (a log file's)
            of = (f" ({self.budget.fraction():.0%} of {self.config.budget_minutes:g} min)"
                  if self.budget else f"/{self.last}")
            _log(f"step {step}{of}: loss {self.loss:.4f} bpc "
                 f"{self.loss / LN2:.4f} chars/s {cps:,.0f} lr {lr:.4g}")
        self.sums = IntervalSums()

    def _periodic(self, every, job):
        """`due`, less a job that the budget's end would repeat at once (`ends_after`)."""
        return self.due(every) and (self.final or not self.budget or
                                    not self.budget.ends_after(job))

    def _validate_if_due(self):
        if self._periodic(self.config.eval_every, "validation"):
            with self._job("validation"):
                self.bpc = self._validate()
            if self.bpc is not None:
                self.validated = (self.step, self.bpc)
                self.pending.scalar("valid/bpc", self.bpc, self.step)
                # Only scheduled validations choose a best (eval_every=0 still scores
                # the last step, for the figures): its weights go out with the next save.
                best = bool(self.config.eval_every) and self.run.keep_if_best(self.step,
                                                                              self.bpc)
                if not self.final:
                    _log(f"step {self.step}: valid bpc {self.bpc:.4f}"
                         f"{' (best so far)' if best else ''}")

    def _sample_if_due(self):
        if self._periodic(self.config.sample_every, "sample"):
            with self._job("sample"):
                self.text = self._draw_sample()
            self.pending.text("samples/text", self.text, self.step)
            if not self.final:
                _log(f"step {self.step} sample: {self.text!r}")

    def _checkpoint_if_due(self):
        """Events, then the checkpoint; then, after SIGTERM / SIGINT, the stop."""
        if not (self.due(self.config.checkpoint_every) or self.stop.signum):
            return
        with self._job("save"):
            path = self._save_now()
        if self.stop.signum:  # the last step's too: a signal is never dropped
            raise self._stopped(path)

    def _stopped(self, path=None):
        """The `Preempted` of the signal received: the checkpoint at this step is on disk
        (`path`, just written; None: the latest, this step's)."""
        written = None if self.done else path or self.run.manager.latest_checkpoint
        return preemption.stopped(self.stop.signum, self.step, written, self.final)

    def _poll_cluster(self):
        if self.cluster is not None and not self.final:
            self.cluster.save_checkpoint_if_preempted()

    def _save_now(self):  # also TensorFlow's: SIGTERM on any worker, all save this step
        if self.budget:  # the seconds spent, for a resume to count from
            self.run.train_seconds.assign(self.budget.spent())
        # Events first: no event on disk runs ahead of a checkpoint.
        checkpoint.write_events(self.pending, self.writer, self.workdir.events_dir,
                                self.run.manager.latest_checkpoint)
        return self.run.save(self.step, self.cursors.get_state(), self.state,
                             self.sums.saved())

    def _stop_now(self):
        raise preemption.Preempted(signal.SIGTERM, (
            f"stopped by SIGTERM on a worker at step {self.step}: every worker saved "
            f"checkpoint ckpt-{self.step}. Run the same command on every worker to resume."))

    def _take_recorded_figures(self):
        """A finished run, run again: the figures its events hold at its last step
        (`checkpoint.recorded_figures`); a validation or sample not there is made now."""
        found = checkpoint.recorded_figures(self.workdir.events_dir, self.step)
        self.loss = found.get("loss")
        self.bpc = found["valid_bpc"] if "valid_bpc" in found else self._validate()
        self.text = found["sample"] if "sample" in found else self._draw_sample()
        if self.loss is None:  # its events are lost: said, not made up
            _log(f"No training loss recorded at step {self.step}: loss and train_bpc null.")

    def _validate(self):
        config, valid = self.config, self.corpus.valid
        ids = valid[:config.eval_chars] if config.eval_chars else valid
        if len(ids) < 2:
            return None
        return steps_lib.evaluate(self.run.model, ids, config.eval_batch_size,
                                  config.num_unrollings, self.eval_step)["bpc"]

    def _draw_sample(self):
        seed = int(self.run.rng.uniform([], maxval=2**31 - 1, dtype=tf.int64))
        return sampling.sample(self.run.model, self.corpus.vocab, "",
                               self.config.sample_length, seed=seed,
                               generator=self.generator)[0]

    def _figures(self):
        warm = self.first_step_sec is not None
        loss = self.loss
        return {"step": self.step, "loss": loss,
                "train_bpc": None if loss is None else loss / steps_lib.LN2,
                "valid_bpc": self.bpc,
                "chars_per_sec": self.run_chars / self.run_time if self.run_time else None,
                "recoveries": int(self.run.recoveries.numpy()), "sample": self.text,
                "workdir": str(self.workdir.path),
                "jit_compile": (self.train_step.uses_xla() if warm
                                else self.config.jit_compile),
                "first_step_sec": self.first_step_sec,
                "elapsed_sec": time.perf_counter() - self.started,
                "total_steps": int(self.run.total_steps.numpy()),
                "budget_minutes": self.config.budget_minutes or None,
                "train_minutes": self.budget.spent() / 60 if self.budget else None}

