"""`experiments.quality`'s PyTorch peer, `gpt_torch`: nanoGPT's baby GPT trained in
turns in a child process (`_nanogpt --serve`, `_contenders.ChildContender`) beside the
other contenders, its clock its own; the turns train exactly as the one-shot run does;
no PyTorch is a one-line error, or a note where the default list leaves it out. The
tests that start PyTorch skip without it (the `bench` extra); none imports it here,
where TensorFlow is loaded (the two crash in one process)."""

import importlib.util
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from support import ROOT, subprocess_env, words

from experiments import _contenders, _quality, quality
from tf_rnn.base.errors import UserError

TINY = {"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16, "batch_size": 4}
NEEDS_TORCH = "gpt_torch needs PyTorch: pip install -e '.[cpu,bench]'"

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed (the `bench` extra: pip install -e '.[cpu,bench]')")


def text_ids(chars, seed=0):
    """`chars` ids of the text8 alphabet (space, a-z): words, as a corpus would give."""
    return np.array([" abcdefghijklmnopqrstuvwxyz".index(c) for c in words(chars, seed)],
                    np.int32)


def sleeping_peer():
    """A peer whose steps sleep: its turns take the machine's time, not its CPU."""
    def train(window):
        time.sleep(0.005)
        return 1.0

    return _quality.Contender("peer", train, lambda ids: 2.0, 2, 3)


@needs_torch
def test_gpt_torch_trains_in_turns_on_its_own_clock_to_its_budgets_end(monkeypatch):
    monkeypatch.setattr(_quality, "SLICE_SECONDS", 0.25)
    torch_gpt = _quality.torch_contender("gpt_torch", TINY, 27)
    torch_gpt.job["threads"] = 1  # no thread of its steps waiting for a busy core
    contenders = [torch_gpt, sleeping_peer()]
    children, lines = [], []

    def on_point(c):
        if c is torch_gpt:
            children.append(c.child)

    budget = 2.0
    bpc = _quality.train_for(contenders, text_ids(8000), text_ids(2000, seed=1), budget,
                             lines.append, points=3, on_point=on_point)
    assert len(lines) >= 4  # turns, the peer's between them
    assert torch_gpt.ended and torch_gpt.steps > 0
    # Its clock: the budget, its validations included (the last one's time kept aside),
    # give or take its last step and a validation (a few ms each, more on a busy machine).
    assert torch_gpt.schedule_fraction >= 0.9  # its last step's rate: near the end
    assert torch_gpt.seconds == pytest.approx(budget, rel=0.1)
    assert bpc["gpt_torch"] == torch_gpt.curve[-1][2] > 0
    # A validation at each of the two moments (2/3 s and 4/3 s of its clock) and at its end.
    moments = [s for s, _, _ in torch_gpt.curve]
    assert len(moments) == 3 and moments[0] >= budget / 3 and moments[1] >= 2 * budget / 3
    assert moments[-1] == torch_gpt.seconds and np.all(np.diff(moments) > 0)
    assert len(children) == 3 and children[0] is children[-1]  # one child, now gone
    assert children[0].poll() is not None and torch_gpt.child is None
    assert torch_gpt.hparams == {"model": "gpt_torch", "width": 16, "layers": 1, "lr": 1e-3,
                                 "schedule": "warmup_cosine", "unroll_or_context": 16,
                                 "batch": 4}


@needs_torch
def test_a_child_that_refuses_its_job_is_one_line_and_goes(monkeypatch):
    contender = _quality.torch_contender("gpt_torch", TINY, 27)
    contender.job["settings"] = {**TINY, "n_head": 3}  # refused by the child, not here
    stopped, stop = [], _contenders._stop
    monkeypatch.setattr(_contenders, "_stop", lambda child: stop(stopped.append(child) or child))
    with pytest.raises(UserError) as error:
        _quality.train_for([contender, sleeping_peer()], text_ids(4000), text_ids(1000), 1.0,
                           lambda line: None)
    assert str(error.value) == ("gpt_torch: Received an invalid value for `n_head`, "
                                "expected a divisor of n_embd 16, got 3.")
    assert len(stopped) == 1 and stopped[0].poll() is not None  # gone, not left behind


# The turns train as the one-shot run trains: on a clock that moves 0.25 s a step and
# 100 s between turns (the other contenders'), which the turns must not count; with
# dropout, so that a validation that left the model in eval mode would show.
TURNS_AND_ONE_SHOT = """
import json, pathlib, sys
from experiments import _nanogpt
from tf_rnn.train import budget

class Clock:
    now = 0.0
    def __call__(self):
        return self.now

clock = budget.clock = Clock()
make_step = _nanogpt.make_step

def paced(*args):
    step = make_step(*args)
    def timed(window, fraction):
        clock.now += 0.25
        return step(window, fraction)
    return timed

_nanogpt.make_step = paced
folder, job = pathlib.Path(sys.argv[1]), json.loads(sys.argv[2])
one_shot = _nanogpt.run(job, folder)
session, turns = _nanogpt.Session(job, folder), []
while not session.state()["ended"]:
    clock.now += 100.0
    turns.append(session.turn(1.1))
    if len(turns) == 2:
        turns[-1]["bpc"] = session.validate(periodic=True)["bpc"]
at_the_end = session.validate(periodic=True)["bpc"]  # left to the last one
print(json.dumps({"one_shot": one_shot, "turns": turns, "at_the_end": at_the_end,
                  "last": session.validate()}))
"""


@needs_torch
def test_the_turns_train_and_score_as_the_one_shot_run(tmp_path):
    np.save(tmp_path / "train.npy", text_ids(6000))
    np.save(tmp_path / "valid.npy", text_ids(1500, seed=1))
    job = {"train": "train.npy", "valid": "valid.npy", "alphabet_size": 27, "minutes": 0.125,
           "settings": {**TINY, "dropout": 0.1, "warmup": 5}, "threads": 1, "seed": 3}
    done = subprocess.run([sys.executable, "-c", TURNS_AND_ONE_SHOT, str(tmp_path),
                           json.dumps(job)], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    one_shot, turns, last = got["one_shot"], got["turns"], got["last"]
    # 7.5 s of 0.25-s steps: 30, five a turn of 1.1 s (the fifth ends past it).
    assert one_shot["steps"] == last["steps"] == 30
    assert [t["steps"] for t in turns] == [5, 10, 15, 20, 25, 30]
    assert [t["seconds"] for t in turns] == [1.25 * k for k in range(1, 7)]
    assert turns[-1]["ended"] and not turns[-2]["ended"]
    assert turns[-1]["fraction"] == pytest.approx(29 / 30)  # the last step's
    assert turns[1]["bpc"] is not None and got["at_the_end"] is None
    assert last["last_loss"] == one_shot["last_loss"]
    assert last["bpc"] == one_shot["valid_bpc"]


# Without PyTorch ------------------------------------------------------------------------

def torch_installed(monkeypatch, installed):
    """PyTorch looked up as installed or not, whether it is or not."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        (object() if installed else None) if name == "torch" else find_spec(name, *a)))


def test_gpt_torch_without_pytorch_is_a_one_line_error(monkeypatch, capsys):
    torch_installed(monkeypatch, False)
    with pytest.raises(SystemExit) as exit_:
        quality.parse_args(["--data", __file__, "--contenders", "gpt_baby,gpt_torch"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"python -m experiments.quality: error: {NEEDS_TORCH}")
    with pytest.raises(UserError, match=r"gpt_torch needs PyTorch: pip install"):
        _quality.make_contenders(["gpt_torch"], 27)


def test_the_default_list_leaves_gpt_torch_out_without_pytorch_with_a_note(monkeypatch,
                                                                           capsys):
    torch_installed(monkeypatch, False)
    args = quality.parse_args(["--data", __file__])
    assert args.contenders == [n for n in _quality.KNOWN if n != "gpt_torch"]
    assert capsys.readouterr().err == ("Leaving out gpt_torch: it needs PyTorch: pip install "
                                       "-e '.[cpu,bench]'\n")
    torch_installed(monkeypatch, True)
    assert quality.parse_args(["--data", __file__]).contenders == _quality.KNOWN
    assert "gpt_torch" in _quality.PEERS and "gpt_torch" in _quality.KNOWN
