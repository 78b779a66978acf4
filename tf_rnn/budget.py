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

A pace measured once can be wrong for the rest of the run: the first tenth of a budget
is slower than the rest (measured: 6 % alone, 14-42 % for seven models trained in turns
by `experiments.quality`), and a schedule fixed from it ends early, the rest of the budget
trained at a rate of zero. `revisions`, fractions of the budget, measure the pace again
over the steps since the last fix and fix the last step anew. `tf-rnn train` keeps the
one fix, so that a resume after its first checkpoint follows the schedule of the run it
resumes (bitwise); `experiments.quality`, which never resumes, revises.
"""

import time

WARMUP_STEPS = 10  # after a process's first step, still slower than the rest: not timed
PROBE_STEPS = 20
PROBE_SECONDS = 30.0
PROBE_FRACTION = 0.1
REVISIONS = (0.25, 0.5, 0.7)  # experiments.quality's: the last before a 20 % cooldown

clock = time.perf_counter  # the budget's clock (the tests give it a fake one)


class TimeBudget:
    """The time budget of one training process over a `tf_rnn.run_state.Run`.

    Call `start()` when the loop starts, `after_step(step)` after each step (it fixes
    `run.budget_steps` once the pace is measured), `exhausted()` to know whether the
    time is spent, and `record()` before each save (the seconds go into the checkpoint).
    `timer`: a clock of its own (seconds; default the module's `clock`), for a trainer
    that shares the wall clock with others (`experiments.quality`'s turns).
    `revisions`: fractions of the budget at which the pace since the last fix fixes the
    last step again (default none: fixed once). `fixes` lists (step, last step) of each.
    """

    def __init__(self, minutes, run, timer=None, revisions=()):
        self.seconds = 60.0 * minutes
        self.run = run
        self.timer = timer
        self.revisions = sorted(revisions)
        self.fixes, self.fixed_at = [], None  # fixed_at: (time, step) of this process's last fix
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

    def spent(self, now=None):
        """Training seconds of the run so far (earlier processes' included), at `now`
        (default: the clock read now)."""
        if self.started is None:
            return self.spent_before
        return self.spent_before + (self.now() if now is None else now) - self.started

    def exhausted(self):
        return self.spent() >= self.seconds

    def after_step(self, step):
        """Counts step `step` done: past the warm-up, the probe times the steps, and
        once it is long enough the budget's last step is fixed from their pace."""
        if self.fixed:
            self._revise(step)
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
        self._fix(step, took / (step - self.probe_from), self.probe_start + took)

    def _fix(self, step, pace, now):
        self.pace, self.fixed_at = pace, (now, step)
        spent = self.spent()
        self.run.budget_steps.assign(step + max(int(max(self.seconds - spent, 0.0) / pace), 1))
        self.fixes.append((step, self.steps))
        self.revisions = [f for f in self.revisions if f * self.seconds > spent]  # still ahead

    def _revise(self, step):
        """Fixes the last step again from the pace since the last fix once the budget
        reaches the next revision (those it passed before the first fix are dropped)."""
        if not self.revisions or self.fixed_at is None:
            return
        now = self.now()
        since, from_step = self.fixed_at
        if self.spent(now) >= self.revisions[0] * self.seconds and step > from_step and \
                now > since:
            self._fix(step, (now - since) / (step - from_step), now)

    def record(self):
        """Puts the seconds spent into the run's variables, for the next checkpoint."""
        self.run.train_seconds.assign(self.spent())
