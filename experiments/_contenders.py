"""The two kinds of contender `experiments.quality` trains in turns for a time budget.

`RunContender`: a tf_rnn preset, trained by the loop `tf-rnn train --minutes M` runs
(`tf_rnn.training.opened`), in a run directory of its own: its clock counts what the
CLI's counts (steps, validations every `eval_every` steps, samples, saves,
diagnostics), and its figure is `tf-rnn eval --split valid` of the run it leaves, so
that the two commands it prints (`command`) reproduce it on a machine of their own.

`Contender`: a peer (a Keras RNN, the transformer) with a train step of its own,
trained a window at a time under a `tf_rnn.budget.TimeBudget`, as the CLI's loop would
train it; validated at the moments of its curve and at its end.

Each has a clock of its own (`watch`, a `tf_rnn.budget.Stopwatch`) that runs during
its turns only: the others' turns are not its time. Both share: `begin(...)` before the
first turn, `turn(seconds)` (trains that long on its clock, or to its budget's end),
`ended`, `finish()` (its figure: validation BPC), `curve` [(seconds, steps, valid
BPC)], `steps`, `seconds`, `chars_per_sec`, `progress` (the fraction of its budget its
schedule has reached), `hparams`, and `command` (None for a peer).
"""

import contextlib
import math
import os

from tf_rnn.errors import ArgumentError


class Contender:
    """A peer trained a step at a time: `train(window) -> loss`, `valid_bpc(ids)`.

    `model` is the model behind them (the Keras peers' `_baselines.KerasCharRNN`, the
    transformer's `_transformer.GPTTrainer`), for a closer look than the two figures.
    `progress` is the float32 variable its schedule reads: the fraction of its budget
    spent; `windows(ids)` gives its training windows (default: `tf_rnn.data.BatchCursors`,
    the streams a carried state needs); `hparams` its settings for TensorBoard's HParams
    dashboard.
    """

    command = None  # a peer has no tf-rnn command

    def __init__(self, name, train, valid_bpc, batch_size, num_unrollings, model=None,
                 progress=None, windows=None, hparams=None):
        from tf_rnn import budget

        self.name, self.train, self.valid_bpc = name, train, valid_bpc
        self.model = model
        self.batch_size, self.num_unrollings = batch_size, num_unrollings
        self.progress = progress if progress is not None else new_progress()
        self.windows = windows or self._cursors
        self.hparams = {"model": name, **(hparams or {}), "batch": batch_size}
        self.watch = budget.Stopwatch()
        self.steps, self.last_loss = 0, math.nan
        self.curve = []  # (training seconds, steps, valid BPC)
        self.budget = None

    def _cursors(self, ids):
        from tf_rnn import data

        return data.BatchCursors(ids, self.batch_size, self.num_unrollings)

    seconds = property(lambda self: self.watch())

    @property
    def chars_per_sec(self):
        return self.steps * self.batch_size * self.num_unrollings / max(self.seconds, 1e-9)

    @property
    def ended(self):
        return self.budget is not None and self.budget.exhausted()

    def begin(self, corpus_ids, valid_ids, seconds, points, on_point):
        """Its windows, its budget of `seconds`, and the `points - 1` moments of its
        clock at which it is validated before its end (`on_point(self)` after each)."""
        from tf_rnn import budget

        self.cursors = self.windows(corpus_ids)
        self.valid_ids, self.on_point = valid_ids, on_point
        self.budget = budget.TimeBudget(seconds / 60, self.progress, timer=self.watch)
        self.budget.start()
        self.marks = [seconds * (i + 1) / points for i in range(points - 1)]

    def turn(self, seconds):
        with self.watch.running():
            turn_end = self.seconds + seconds
            while self.seconds < turn_end and not self.budget.exhausted():
                self.budget.update()  # the fraction spent: the rate of this step
                self.last_loss = self.train(self.cursors.next())
                self.steps += 1
                self._measure_if_due()

    def _measure_if_due(self):
        """A validation once its clock has passed a moment of its curve (one for all it
        has passed: a validation dearer than the gap between two moments is not
        repeated back to back), unless the budget's end would repeat it at once (as
        the CLI leaves a periodic validation to the last step)."""
        passed = [m for m in self.marks if m <= self.seconds]
        if passed:
            self.marks = self.marks[len(passed):]
            if not self.budget.ends_after("validation"):
                self._measure()

    def finish(self):
        """Its last validation, on its clock as the CLI's last one is: its figure."""
        with self.watch.running():
            self._measure()
        return self.curve[-1][2]

    def _measure(self):
        with self.budget.job("validation"):  # its time kept aside for the last one
            bpc = float(self.valid_bpc(self.valid_ids))
        self.curve.append((self.seconds, self.steps, bpc))
        if self.on_point:
            self.on_point(self)


class RunContender:
    """tf_rnn's `preset` with `changes` (config fields), trained for `minutes` on the
    corpus at `data` in the run directory `workdir` (a new one), as `tf-rnn train`
    trains it; its curve is the run's own validations."""

    def __init__(self, name, preset, changes, data, workdir, minutes):
        from tf_rnn import budget, config as config_lib, training

        self.name, self.preset, self.changes = name, preset, dict(changes)
        self.data, self.workdir, self.minutes = data, str(workdir), minutes
        cfg = config_lib.get_preset(preset).replace(**changes, budget_minutes=minutes)
        self.batch_size, self.num_unrollings = cfg.batch_size, cfg.num_unrollings
        self.hparams = {"model": name, "width": cfg.num_nodes, "layers": cfg.num_layers,
                        "lr": cfg.learning_rate, "schedule": cfg.schedule,
                        "unroll_or_context": cfg.num_unrollings, "batch": cfg.batch_size}
        self.watch = budget.Stopwatch()
        self._open = contextlib.ExitStack()
        self.trainer = self._open.enter_context(
            training.opened(cfg, workdir, data, progress=False, timer=self.watch))
        self.ended, self.curve, self.on_point = False, [], None

    seconds = property(lambda self: self.watch())
    steps = property(lambda self: self.trainer.step)
    progress = property(lambda self: self.trainer.run.budget_progress)
    chars_per_sec = Contender.chars_per_sec

    @property
    def last_loss(self):
        return math.nan if self.trainer.loss is None else self.trainer.loss

    @property
    def command(self):
        """The `tf-rnn` commands that train and score it alone (in a directory of
        their own)."""
        settings = "".join(f" --set {k}={_setting(v)}" for k, v in self.changes.items())
        workdir = os.path.join("runs", "quality-cli", self.name)
        data = f" --data {self.data}" if self.data else ""
        return (f"tf-rnn train --preset {self.preset}{data}{settings} "
                f"--minutes {self.minutes:g} --workdir {workdir} && "
                f"tf-rnn eval --workdir {workdir} --split valid")

    def begin(self, corpus_ids, valid_ids, seconds, points, on_point):
        """Checks that it scores the peers' validation characters (its budget is its
        config's, its curve its validations)."""
        import numpy as np

        if not np.array_equal(self.trainer.corpus.valid, valid_ids):
            config = self.trainer.config
            raise ArgumentError(f"{self.name}'s validation split (vocab {config.vocab!r}, "
                                f"split {config.split}) is not the peers': its figure "
                                f"would not compare.")
        self.on_point = on_point

    def turn(self, seconds):
        with self.watch.running():
            turn_end = self.seconds + seconds
            self.ended = self.trainer.train_while(lambda: self._after_step() < turn_end)

    def _after_step(self):
        """Its clock after a step, the step's validation (if any) put on its curve."""
        latest = self.trainer.validated
        if latest is not None and (not self.curve or self.curve[-1][1] != latest[0]):
            self.curve.append((self.seconds, *latest))
            if self.on_point:
                self.on_point(self)
        return self.seconds

    def finish(self):
        """Its run closed (its lock let go) and its last checkpoint scored as `tf-rnn
        eval --split valid` scores it."""
        from tf_rnn import cli

        self._after_step()
        self.trainer.figures()
        self._open.close()
        return cli.evaluate_split(self.workdir, "valid")["bpc"]


def _setting(value):
    """A config value as `--set` reads it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def new_progress():
    """The fraction of a budget spent, 0: the float32 variable a schedule reads."""
    import tensorflow as tf

    return tf.Variable(0.0, dtype=tf.float32, trainable=False, name="budget_progress")


def no_last_step():
    """A schedule's last step, 0: none (the budget's clock alone ends the schedule)."""
    import tensorflow as tf

    return tf.Variable(0, dtype=tf.int64, trainable=False, name="total_steps")
