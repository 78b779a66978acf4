"""Training to a time budget (`tf-rnn train --minutes M`, tf_rnn.budget): the last step
fixed once from the measured pace, the schedule ending there, the stop when the time is
spent, and resumes that follow the same schedule to the bit.

The clock is tf_rnn.budget's own (`budget.clock`), replaced here by one that moves a
fixed amount at each reading: the figures do not depend on how busy the machine is.
"""

import math
import types

import pytest
import tensorflow as tf
from support import (assert_bitwise_equal, assert_same_events, checkpoint_values, events,
                     run_cli, tiny)

from tf_rnn import budget


class FakeClock:
    """perf_counter() that moves `tick` seconds at each reading (`slow_tick` for the
    first `slow_readings` of them: a probe that sees a slower pace than the rest)."""

    def __init__(self, tick, slow_tick=None, slow_readings=0):
        self.now, self.tick, self.readings = 0.0, tick, 0
        self.slow_tick, self.slow_readings = slow_tick, slow_readings

    def __call__(self):
        self.readings += 1
        slow = self.readings <= self.slow_readings
        self.now += self.slow_tick if slow else self.tick
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(0.01)
    monkeypatch.setattr(budget, "clock", fake)
    return fake


def fake_run(budget_steps=0, seconds=0.0):
    return types.SimpleNamespace(
        budget_steps=tf.Variable(budget_steps, dtype=tf.int64),
        train_seconds=tf.Variable(seconds, dtype=tf.float64))


def test_the_pace_of_the_probe_fixes_the_last_step_once(clock):
    run = fake_run()
    b = budget.TimeBudget(1.0, run)  # 60 s; the probe lasts min(30 s, 6 s) and 20 steps
    b.start()
    step = 0
    while not b.fixed:
        step += 1
        clock.now += 0.09  # a step: 0.1 s with the clock's own reading
        b.after_step(step)
    # The first step and WARMUP_STEPS more are not timed; then 6 s of steps.
    assert b.probe_from == 1 + budget.WARMUP_STEPS
    assert step - b.probe_from >= budget.PROBE_STEPS
    assert b.pace == pytest.approx(0.1, rel=0.02)
    # What is left of the minute at that pace: 60 s at 0.1 s a step, the probe included.
    assert 590 <= b.steps <= 602 and step < b.steps
    fixed = b.steps
    for step in range(step + 1, step + 50):  # fixed once: another pace changes nothing
        clock.now += 1.0
        b.after_step(step)
        assert b.steps == fixed


def test_a_restored_budget_counts_the_time_already_spent(clock):
    run = fake_run(budget_steps=10**5, seconds=59.0)  # 1 s of the minute left
    b = budget.TimeBudget(1.0, run)
    assert b.fixed and b.spent() == 59.0 and not b.exhausted()
    b.start()
    clock.now += 2.0
    assert b.exhausted()
    b.record()
    assert float(run.train_seconds.numpy()) == pytest.approx(61.02)


def test_minutes_is_a_checked_config_field():
    from tf_rnn import config

    with pytest.raises(ValueError, match="`budget_minutes`, expected a non-negative"):
        config.Config(budget_minutes=math.inf)


def test_negative_minutes_is_one_line(tmp_path, capsys, corpus):
    code, _, err = run_cli(capsys, "train", "--data", corpus, "--workdir", tmp_path / "run",
                           "--minutes", "-1", *tiny())
    assert code == 2 and err.count("\n") == 1 and "`budget_minutes`" in err
    assert not (tmp_path / "run").exists()


# A 3-second budget of fake time; the probe sees 0.02 s a step, the rest 0.01 s (two
# readings a step): the schedule ends near step 160, well before the time is spent.
BUDGET = ["--minutes", "0.05", "--steps", "100000",
          *tiny(schedule="linear", optimizer="adam", learning_rate=0.01, log_every=1,
                checkpoint_every=30, deterministic=True, jit_compile=False)]


def budget_clock():
    return FakeClock(0.005, slow_tick=0.01, slow_readings=80)


def logged(workdir, tag):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(workdir / "events"), size_guidance={
        event_accumulator.TENSORS: 0})
    acc.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}


@pytest.fixture
def reference(tmp_path, capsys, corpus, monkeypatch, op_determinism_restored):
    """An uninterrupted budgeted run: (workdir, its JSON result)."""
    monkeypatch.setattr(budget, "clock", budget_clock())
    workdir = tmp_path / "reference"
    code, result, err = run_cli(capsys, "train", "--data", corpus, "--workdir", workdir,
                                *BUDGET)
    assert code == 0, err
    assert f"so the schedule ends at step {result['total_steps']}." in err
    return workdir, result


@pytest.mark.slow
def test_the_linear_schedule_ends_at_zero_on_the_step_the_budget_fixed(reference):
    workdir, result = reference
    total = result["total_steps"]
    assert 100 < total < 250 and result["step"] == total  # ended by the schedule
    assert result["train_minutes"] < result["budget_minutes"]
    lr = logged(workdir, "train/learning_rate")  # the rate the next step uses
    assert lr[1] == pytest.approx(0.01)  # held while the pace was measured
    assert lr[total] == pytest.approx(0.0, abs=1e-9)
    for step in range(total // 2, total):
        assert lr[step] == pytest.approx(0.01 * (1 - step / total), rel=1e-4), step


@pytest.mark.slow
def test_an_interrupted_budgeted_run_resumes_bitwise_on_the_same_schedule(
        tmp_path, capsys, corpus, monkeypatch, reference):
    workdir = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--workdir", str(workdir), *BUDGET]
    monkeypatch.setattr(budget, "clock", budget_clock())
    after_step = budget.TimeBudget.after_step

    def ctrl_c_at_75(self, step):  # after ckpt-60, which holds the fixed budget
        if step == 75:
            raise KeyboardInterrupt
        after_step(self, step)

    monkeypatch.setattr(budget.TimeBudget, "after_step", ctrl_c_at_75)
    code, _, err = run_cli(capsys, *argv)
    assert code == 130, err
    monkeypatch.setattr(budget.TimeBudget, "after_step", after_step)
    monkeypatch.setattr(budget, "clock", FakeClock(0.005))  # a new process
    code, result, err = run_cli(capsys, *argv)
    assert code == 0 and "at step 60." in err, err
    assert result["step"] == result["total_steps"] == reference[1]["total_steps"]
    seconds = "train_seconds/.ATTRIBUTES/VARIABLE_VALUE"  # clock readings, not the run
    got, want = checkpoint_values(workdir), checkpoint_values(reference[0])
    assert want[1].pop(seconds) > 0 and got[1].pop(seconds) > 0
    assert_bitwise_equal(got, want)
    assert_same_events(events(workdir), events(reference[0]))


def test_revisions_fix_the_last_step_again_from_the_pace_since_the_last_fix(clock):
    run = fake_run()
    b = budget.TimeBudget(100 / 60, run, revisions=(0.5, 0.25, 0.7))  # 100 s, sorted
    b.start()
    step = 0
    while clock.now < 100:  # 1 s a step until step 40, then 0.5 s: a probe that is slow
        step += 1
        clock.now += (1.0 if step <= 40 else 0.5) - clock.tick
        b.after_step(step)
        if step == 40:
            assert len(b.fixes) == 1 and b.fixes[0][1] < 110  # fixed at 1 s a step
    # Three revisions, the last one (at 70 s) from 0.5 s a step: the steps the budget held.
    assert len(b.fixes) == 3 and b.revisions == []
    # The probe's fix at step 31 (31 s), then at 50 s (step 60) and 70 s (step 100); the
    # revision at 25 s, passed before the first fix, is dropped.
    assert [s for s, _ in b.fixes] == [31, pytest.approx(60, abs=2), pytest.approx(100, abs=2)]
    assert abs(b.steps - step) <= 2, (b.fixes, step)


def test_without_revisions_the_slow_probe_fixes_too_few_steps(clock):
    run = fake_run()
    b = budget.TimeBudget(100 / 60, run)
    b.start()
    step = 0
    while clock.now < 100:
        step += 1
        clock.now += (1.0 if step <= 40 else 0.5) - clock.tick
        b.after_step(step)
    assert len(b.fixes) == 1 and b.steps < step - 40  # what the revisions are for
