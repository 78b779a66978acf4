"""Training to a time budget: `tf-rnn train --minutes M` (config `budget_minutes`).

The learning-rate schedule (`tf_rnn.steps.Schedule`: linear, or constant then a
cooldown) needs the run's last step, and a budget gives minutes, not steps. So the run
measures its own pace: `PROBE_STEPS` steps or more after the first `WARMUP_STEPS` of
the process (the first compiles), lasting `PROBE_FRACTION` of the budget, or
`PROBE_SECONDS` if that is less, at the initial rate, timed with everything the loop
does. From that pace and the time left it fixes the budget's last step, once:
`Run.budget_steps` holds it, and a checkpoint saves it, so a resumed run follows the
same schedule to the same step (bitwise, with `deterministic=true`). The schedule ends
at that step or at the steps asked, whichever comes first (`Run.total_steps`). The
training seconds spent so far are saved too, so that a resumed run counts the budget
from where the last checkpoint left it.

The budget also stops the run outright when it is spent before the last step (a
machine that got slower, validations that cost more than the pace measured): the
step then reached is the run's last, with its validation, sample and checkpoint.
`--steps` with `--minutes`: whichever ends first.
"""

import time

WARMUP_STEPS = 10  # after a process's first step, still slower than the rest: not timed
PROBE_STEPS = 20
PROBE_SECONDS = 30.0
PROBE_FRACTION = 0.1

clock = time.perf_counter  # the budget's clock (the tests give it a fake one)


class TimeBudget:
    """The time budget of one training process over a `tf_rnn.run_state.Run`.

    Call `start()` when the loop starts, `after_step(step)` after each step (it fixes
    `run.budget_steps` once the pace is measured), `exhausted()` to know whether the
    time is spent, and `record()` before each save (the seconds go into the checkpoint).
    `timer`: a clock of its own (seconds; default the module's `clock`), for a trainer
    that shares the wall clock with others (`experiments.quality`'s turns).
    """

    def __init__(self, minutes, run, timer=None):
        self.seconds = 60.0 * minutes
        self.run = run
        self.timer = timer
        self.spent_before = float(run.train_seconds.numpy())  # by earlier processes
        self.started = self.probe_start = self.probe_from = self.pace = None
        self.warmup_until = None

    @property
    def fixed(self):
        """Whether the run's last step has been fixed from its pace."""
        return self.steps > 0

    @property
    def steps(self):
        """The step at which the budget ends (0: not measured yet)."""
        return int(self.run.budget_steps.numpy())

    def now(self):
        return (self.timer or clock)()  # the module's clock looked up late: tests patch it

    def start(self):
        self.started = self.now()

    def spent(self):
        """Training seconds of the run so far (earlier processes' included)."""
        if self.started is None:
            return self.spent_before
        return self.spent_before + self.now() - self.started

    def exhausted(self):
        return self.spent() >= self.seconds

    def after_step(self, step):
        """Counts step `step` done: past the warm-up, the probe times the steps, and
        once it is long enough the budget's last step is fixed from their pace."""
        if self.fixed:
            return
        if self.warmup_until is None:
            self.warmup_until = step + WARMUP_STEPS
        if step <= self.warmup_until:
            if step == self.warmup_until:
                self.probe_start, self.probe_from = self.now(), step
            return
        took = self.now() - self.probe_start
        long_enough = min(PROBE_SECONDS, self.seconds * PROBE_FRACTION)
        if step - self.probe_from < PROBE_STEPS or took < long_enough:
            return
        self.pace = took / (step - self.probe_from)
        left = max(self.seconds - self.spent(), 0.0)
        self.run.budget_steps.assign(step + max(int(left / self.pace), 1))

    def record(self):
        """Puts the seconds spent into the run's variables, for the next checkpoint."""
        self.run.train_seconds.assign(self.spent())
