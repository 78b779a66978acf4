"""Training to a time budget: `tf-rnn train --minutes M` (config `budget_minutes`).

A budget gives minutes, not steps, so the learning-rate schedule of a budget run
(`tf_rnn.engine.steps.Schedule`: linear, or constant then a cooldown) is a function of the
fraction of the budget's clock spent, not of the step: `TimeBudget.update()` writes that
fraction into the `progress` variable the schedule reads, before every step. The run
stops once the fraction reaches 1, the rate then at its end (zero), whatever happened
on the way: validations dearer than the steps, a machine that gets busier or quieter.
No step count is ever predicted from a pace, so none can be wrong.

The clock counts everything the loop does (steps, validations, samples, saves,
diagnostics) from the first step of each process, plus the seconds of the earlier
processes of the run (saved in its checkpoints). The jobs the last step runs (its
validation, sample and save) come after the stop; `job(name)` times each job when it
runs, and the budget keeps the last time of each aside (`reserve`), so that the run with
its last jobs ends on time rather than one validation late.

A budget run's last step depends on the clock, so "exact resume" means: a run stopped
(SIGTERM, SIGKILL) and resumed goes on from its checkpoint's seconds and ends annealed
and on time. A run with a fixed step count and no budget stays bitwise (its schedule
reads no clock). `--steps` with `--minutes`: the schedule ends at whichever comes first.
"""

import contextlib
import time

clock = time.perf_counter  # the budget's clock (the tests give it a fake one)
# How close to its end a run must be for the same command to find it finished: the
# budget's target (a run ends within 2 % of its minutes); a longer --minutes goes on.
END_TOLERANCE = 0.02


class TimeBudget:
    """The time budget of one training process.

    Args:
      minutes: the budget (> 0).
      progress: the float32 variable the learning-rate schedule reads (None: nobody
        reads it), set to the fraction spent by `update()`.
      spent_before: seconds the run's earlier processes spent (from its checkpoint).
      timer: a clock of its own (seconds; default the module's `clock`), for a trainer
        that shares the wall clock with others (`experiments.quality`'s turns).

    Call `start()` when the loop starts, `update()` before each step, `exhausted()`
    after it, and wrap each periodic job in `job(name)`.
    """

    def __init__(self, minutes, progress=None, spent_before=0.0, timer=None):
        self.seconds = 60.0 * minutes
        self.progress = progress
        self.spent_before = float(spent_before)
        self.timer = timer
        self.started = None
        self.jobs = {}  # name: seconds it took the last time it ran

    def now(self):
        return (self.timer or clock)()  # the module's clock looked up late: tests patch it

    def start(self):
        self.started = self.now()

    def spent(self, now=None):
        """Seconds of the run so far (earlier processes' included), at `now` (default:
        the clock read now)."""
        if self.started is None:
            return self.spent_before
        return self.spent_before + (self.now() if now is None else now) - self.started

    @property
    def reserve(self):
        """Seconds kept for the jobs that follow the last step (each one's last time)."""
        return sum(self.jobs.values())

    def fraction(self):
        """The fraction of the budget spent, counting the reserve as spent: 1 is the end."""
        usable = self.seconds - self.reserve
        return 1.0 if usable <= 0 else min(self.spent() / usable, 1.0)

    def update(self):
        """Writes the fraction spent into `progress` (the schedule's); returns it."""
        fraction = self.fraction()
        if self.progress is not None:
            self.progress.assign(fraction)
        return fraction

    def exhausted(self):
        return self.fraction() >= 1.0

    def finished(self, ended_at, step):
        """Whether a restored run at `step` is done: its clock spent, or its budget ended
        at this step (`ended_at`, from its checkpoint) within END_TOLERANCE of these
        minutes. A longer budget goes on."""
        return self.exhausted() or (
            ended_at == step > 0 and self.spent() >= (1 - END_TOLERANCE) * self.seconds)

    def ends_after(self, name):
        """Whether running the job `name` now would spend what is left: it is then
        better left to the last step, which runs it anyway (a periodic validation just
        before the end would otherwise be followed by the last step's own)."""
        return self.spent() + self.jobs.get(name, 0.0) + self.reserve >= self.seconds

    @contextlib.contextmanager
    def job(self, name):
        """Times a periodic job (`name`: "validation", "sample", "save", ...)."""
        t0 = self.now()
        try:
            yield
        finally:
            self.jobs[name] = self.now() - t0

    def describe(self):
        """One line for the log: the budget and what it keeps for the last jobs."""
        kept = f", {self.reserve:.1f} s of it kept for the last step's jobs" if self.jobs else ""
        return (f"Budget {self.seconds / 60:g} min: {self.spent():.1f} s spent{kept}")


class Stopwatch:
    """A clock that runs only inside `running()`: the seconds of one trainer's turns,
    for trainers that take turns on one machine (`experiments.quality`); a
    `TimeBudget`'s `timer`. Reads the module's `clock`."""

    def __init__(self):
        self.total, self.since = 0.0, None

    def __call__(self):
        return self.total + (0.0 if self.since is None else clock() - self.since)

    @contextlib.contextmanager
    def running(self):
        self.since = clock()
        try:
            yield
        finally:
            self.total, self.since = self.total + clock() - self.since, None
