"""One accounting for `experiments.quality` and the CLI (issue 37, item 2): a tf_rnn
contender is trained by `tf-rnn train --minutes`'s own loop and scored by `tf-rnn eval
--split valid`, so the two commands printed beside its row reproduce it.

On a clock that moves only with the training steps and the validations (tf_rnn.train.budget's
clock replaced, as in tests/test_budget.py), the harness's run in turns and the printed
commands run alone take the same steps and give the same figure: the time each spends is
counted the same way, validations included.
"""

import shlex

import numpy as np
import pytest
from support import run_cli, settings

from experiments import _contenders, _quality
from tf_rnn import data
from tf_rnn.train import budget, trainer

# eval_every 20: validations on the clock, whose cost (below) the budget must count.
CHANGES = {k: v for k, v in (s.split("=") for s in settings(eval_every=20, log_every=5,
                                                              schedule="linear"))}


class PacedClock:
    """tf_rnn.train.budget's clock: 1/64 s a training step, 1/8 s a validation (binary
    fractions: sums of them are exact, so that a clock summed over turns and one read
    at once agree to the bit)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def paced(monkeypatch):
    clock = PacedClock()
    monkeypatch.setattr(budget, "clock", clock)
    timed_step, validate = trainer.Trainer._timed_step, trainer.Trainer._validate

    def step(self, window):
        clock.now += 1 / 64
        return timed_step(self, window)

    def dear(self):
        clock.now += 1 / 8
        return validate(self)

    monkeypatch.setattr(trainer.Trainer, "_timed_step", step)
    monkeypatch.setattr(trainer.Trainer, "_validate", dear)
    return clock


def parsed(changes):
    """The tiny settings as the config's types (what `--set` gives the CLI)."""
    from tf_rnn.base import config

    cfg = config.with_overrides(config.get_preset("text8_best"),
                                [f"{k}={v}" for k, v in changes.items()])
    return {k: getattr(cfg, k) for k in changes}


@pytest.mark.slow
def test_a_tf_rnn_row_is_what_its_printed_commands_give(tmp_path, monkeypatch, capsys,
                                                        corpus, paced):
    monkeypatch.chdir(tmp_path)
    contender = _contenders.RunContender("tiny", "text8_best", parsed(CHANGES), str(corpus),
                                         tmp_path / "quality" / "tiny" / "run", 0.05)
    split = data.load_corpus(str(corpus), vocab="text8")
    peer_clock = [0]

    def peer_step(window):  # a peer in turns beside it: its time is not the contender's
        paced.now += 1 / 16
        peer_clock[0] += 1
        return 0.0

    peer = _quality.Contender("peer", peer_step, lambda ids: 1.0, 2, 3)
    monkeypatch.setattr(_quality, "SLICE_SECONDS", 0.5)  # several turns each
    bpc = _quality.train_for([contender, peer], split.train, split.valid, 3.0,
                             lambda line: None)
    assert peer_clock[0] > 0 and contender.seconds == pytest.approx(3.0, rel=0.02)
    # Its curve: the run's validations, every 20 steps (less one the budget's end
    # would repeat at once) and the last.
    validated = [s for _, s, _ in contender.curve]
    assert validated[:4] == [20, 40, 60, 80] and validated[-1] == contender.steps
    assert all(s % 20 == 0 for s in validated[:-1])

    train, evaluate = contender.command.split(" && ")
    assert train.startswith("tf-rnn train --preset text8_best --data ")
    assert "--minutes 0.05" in train and "--set eval_every=20" in train
    paced.now = 0.0
    code, trained, err = run_cli(capsys, *shlex.split(train)[1:], "--no-progress")
    assert code == 0, err
    code, scored, err = run_cli(capsys, *shlex.split(evaluate)[1:])
    assert code == 0, err
    # Alone, on the same clock: the same steps, the same validations, the same figure.
    assert trained["step"] == contender.steps
    assert trained["train_minutes"] == pytest.approx(contender.seconds / 60, abs=1e-9)
    assert scored["bpc"] == pytest.approx(bpc["tiny"], abs=1e-6)
    assert scored["step"] == contender.steps


def test_a_quality_run_refuses_a_logdir_holding_runs(tmp_path):
    (tmp_path / "text8_best" / "run").mkdir(parents=True)
    with pytest.raises(Exception, match="holds runs of an earlier quality run"):
        _quality.check_new_runs(["text8_best", "arch1_sum_best"], str(tmp_path))
    _quality.check_new_runs(["arch1_sum_best"], str(tmp_path))  # nothing there: fine
    assert list((tmp_path / "text8_best" / "run").iterdir()) == []  # nothing changed


def test_a_command_sets_each_change_as_set_reads_it():
    assert _contenders._setting(True) == "true" and _contenders._setting(0.5) == "0.5"
    assert np.isclose(float(_contenders._setting(1e-3)), 1e-3)
