"""Training to a time budget (`tf-rnn train --minutes M`, tf_rnn.train.budget): the schedule
follows the fraction of the budget's clock spent, so the run ends annealed and on time
whether validation is cheap or dear and whether the machine gets busier or quieter; the
jobs of the last step are kept time for; a resumed run counts from its checkpoint's
seconds and ends annealed too (issue 37, item 1).

The clock is tf_rnn.train.budget's own (`budget.clock`), replaced here by one that moves a
fixed amount at each reading (and more where a test says: a validation that takes
long, a machine that slows down): the figures do not depend on how busy the machine is.
"""

import math
import os
import signal

import pytest
import tensorflow as tf
from support import finish, run_cli, start_driver, tiny, wait_for

from tf_rnn import data
from tf_rnn.base import config
from tf_rnn.engine import steps
from tf_rnn.train import budget, training


class FakeClock:
    """perf_counter() that moves `tick` seconds at each reading; `tick` can change."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(0.01)
    monkeypatch.setattr(budget, "clock", fake)
    return fake


# The budget alone --------------------------------------------------------------------

def test_the_fraction_spent_counts_the_earlier_processes_and_the_reserve(clock):
    progress = tf.Variable(0.0)
    b = budget.TimeBudget(1.0, progress, spent_before=30.0)  # half of the minute spent
    assert b.fraction() == pytest.approx(0.5) and not b.exhausted()
    b.start()
    clock.now += 10.0
    assert b.update() == pytest.approx(40.01 / 60, rel=1e-6)
    assert float(progress.numpy()) == pytest.approx(40.01 / 60, rel=1e-6)
    with b.job("validation"):
        clock.now += 5.0  # a dear validation: kept aside for the last step's
    assert b.reserve == pytest.approx(5.01) and b.fraction() == pytest.approx(45.04 / 54.99)
    clock.now += 10.0  # 55.05 s spent + 5.01 kept > 60 s: the end
    assert b.exhausted() and b.update() == 1.0


def test_the_schedule_follows_whichever_is_further_along_steps_or_clock():
    progress = tf.Variable(0.0)
    cooldown = steps.make_schedule(config.Config(schedule="cooldown", steps=1000,
                                                 learning_rate=1.0, budget_minutes=1.0),
                                   progress=progress)
    linear = steps.make_schedule(config.Config(schedule="linear", learning_rate=1.0,
                                               budget_minutes=1.0),
                                 total_steps=tf.Variable(0, dtype=tf.int64),  # no steps
                                 progress=progress)
    for fraction, cool, line in [(0.0, 1.0, 1.0), (0.5, 1.0, 0.5), (0.9, 0.5, 0.1),
                                 (1.0, 0.0, 0.0), (1.5, 0.0, 0.0)]:
        progress.assign(fraction)
        assert float(cooldown(10)) == pytest.approx(cool, abs=1e-6), fraction
        assert float(linear(10)) == pytest.approx(line, abs=1e-6), fraction  # no steps: clock
    progress.assign(0.1)
    assert float(cooldown(950)) == pytest.approx(0.25)  # the steps asked end first


def test_without_a_budget_the_schedule_reads_no_clock():
    schedule = steps.make_schedule(config.Config(schedule="linear", steps=100,
                                                 learning_rate=2.0))
    assert schedule.progress is None
    assert [float(schedule(s)) for s in (0, 50, 100)] == [2.0, 1.0, 0.0]


# Budget runs through the CLI, on the fake clock ----------------------------------------

# A 3-second budget of fake time, 0.02 s a step: about 150 steps.
BUDGET = ["--minutes", "0.05", "--steps", "100000",
          *tiny(schedule="linear", optimizer="adam", learning_rate=0.01, log_every=1,
                checkpoint_every=40, eval_every=20, jit_compile=False)]


@pytest.fixture
def paced(monkeypatch):
    """The fake clock moves only when a train step runs (`pace` seconds, which a test
    may change) or where a test adds time: reading it costs nothing, as a real one's."""
    fake = FakeClock(0.0)
    fake.pace = 0.02
    monkeypatch.setattr(budget, "clock", fake)
    timed_step = training.Trainer._timed_step

    def step(self, window):
        fake.now += fake.pace
        return timed_step(self, window)

    monkeypatch.setattr(training.Trainer, "_timed_step", step)
    return fake


def logged(workdir, tag):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(workdir / "events"), size_guidance={
        event_accumulator.TENSORS: 0})
    acc.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}


def assert_ended_annealed_on_time(workdir, result, initial=0.01):
    """The rate of the last step near zero, no step trained at rate zero before it, and
    the budget's minutes within 2 %."""
    lr = logged(workdir, "train/learning_rate")  # the rate the next step uses
    last = result["step"]
    assert last == max(lr) and result["total_steps"] == 100000  # ended by the clock
    assert lr[last] <= 0.02 * initial, lr[last]
    assert min(lr[s] for s in lr if s < last) > 0  # nothing trained at rate zero
    assert abs(result["train_minutes"] - result["budget_minutes"]) <= \
        budget.END_TOLERANCE * result["budget_minutes"], result["train_minutes"]
    return lr


@pytest.mark.slow
def test_a_budget_run_ends_annealed_on_time_when_validation_is_dear(
        tmp_path, capsys, corpus, monkeypatch, paced, validation_seconds=0.3):
    """Each validation costs 10 % of the budget (cheap ones: the pace tests below)."""
    validate = training.Trainer._validate

    def dear(self):  # each validation costs 0.3 s of the 3-second budget: 10 %
        paced.now += validation_seconds
        return validate(self)

    monkeypatch.setattr(training.Trainer, "_validate", dear)
    workdir = tmp_path / "run"
    code, result, err = run_cli(capsys, "train", "--data", corpus, "--workdir", workdir,
                                *BUDGET)
    assert code == 0, err
    lr = assert_ended_annealed_on_time(workdir, result)
    assert f"step {result['step']} is the last" in err
    assert "0.3 s of it kept for the last step's jobs" in err  # for the last validation
    # 150 steps of 0.02 s, less the validations' time (every 20 steps)
    assert result["step"] == pytest.approx(90, abs=3)
    assert len(lr) == result["step"]  # logged at every step


@pytest.mark.slow
@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_a_pace_that_changes_mid_run_still_ends_annealed(tmp_path, capsys, corpus,
                                                          monkeypatch, paced, factor):
    """The machine gets twice as busy (or quiet) after step 40: no schedule fixed from
    the first steps' pace to stop early or to train on at rate zero."""
    next_window = data.BatchCursors.next
    calls = [0]

    def changing(self):
        calls[0] += 1
        if calls[0] == 41:
            paced.pace *= factor
        return next_window(self)

    monkeypatch.setattr(data.BatchCursors, "next", changing)
    workdir = tmp_path / "run"
    code, result, err = run_cli(capsys, "train", "--data", corpus, "--workdir", workdir,
                                *BUDGET)
    assert code == 0, err
    # 40 steps of 0.02 s, then 2.2 s at the new pace
    assert result["step"] == pytest.approx(40 + 2.2 / (0.02 * factor), abs=3)
    assert_ended_annealed_on_time(workdir, result)


@pytest.mark.slow
def test_the_progress_bar_counts_the_budgets_seconds_from_the_start(tmp_path, capsys,
                                                                     corpus, paced):
    argv = [a for a in BUDGET if a != "--no-progress"] + ["--steps", "3"]
    code, result, err = run_cli(capsys, "train", "--data", corpus, "--workdir",
                                tmp_path / "run", *argv)
    assert code == 0 and result["step"] == 3, err
    assert "/3 [" in err and "s/s]" in err  # 3 s of budget, not a guessed step count
    assert "/100000" not in err and "/3 steps" not in err


@pytest.mark.parametrize("minutes", ["0", "-1", "nan"])
def test_minutes_must_be_positive(tmp_path, capsys, corpus, minutes):
    """--minutes 0 trained with no limit while -1 was refused."""
    from tf_rnn import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--data", str(corpus), "--workdir", str(tmp_path / "run"),
                  "--minutes", minutes, *tiny()])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "--minutes" in err, err
    assert not (tmp_path / "run").exists()


def test_minutes_is_a_checked_config_field():
    with pytest.raises(ValueError, match="`budget_minutes`, expected a non-negative"):
        config.Config(budget_minutes=math.inf)


@pytest.mark.slow
def test_a_finished_budget_run_run_again_is_done_and_a_longer_one_goes_on(
        tmp_path, capsys, corpus, paced):
    workdir = tmp_path / "run"
    argv = ["train", "--data", corpus, "--workdir", workdir, *BUDGET]
    code, first, err = run_cli(capsys, *argv)
    assert code == 0, err
    code, again, err = run_cli(capsys, *argv)
    assert code == 0 and again["step"] == first["step"] and "already at step" in err
    longer = [a if a != "0.05" else "0.1" for a in argv]
    code, more, err = run_cli(capsys, *longer)
    assert code == 0 and more["step"] > first["step"] + 50, err


# A real SIGKILL, then the same command -------------------------------------------------

@pytest.mark.slow
def test_a_sigkilled_budget_run_resumed_ends_annealed(tmp_path, corpus):
    """Real time: a 12-second budget killed (SIGKILL) after its checkpoint at step 40,
    then the same command, which goes on from that checkpoint's seconds."""
    from tf_rnn import cli

    workdir = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--workdir", str(workdir), "--minutes", "0.2",
            "--steps", "100000", *tiny(schedule="cooldown", optimizer="adam",
                                       learning_rate=0.01, log_every=1, checkpoint_every=20,
                                       eval_every=0, jit_compile=False)]
    proc, marker = start_driver(tmp_path, "pause", 45, argv)
    wait_for(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    finish(proc)
    assert proc.returncode == -signal.SIGKILL
    assert cli.main(argv) == 0
    lr = logged(workdir, "train/learning_rate")
    last = max(lr)
    assert last > 60 and lr[last] <= 0.05 * 0.01, (last, lr[last])  # annealed
    assert min(lr[s] for s in lr if s < last) > 0
