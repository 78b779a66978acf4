"""Reliability: exact resume after SIGKILL, kills inside saves, fallback to the last
loadable checkpoint, the divergence guard, and determinism.

"Exact" is bitwise here: on CPU with op determinism on, every variable a checkpoint
holds (weights, optimizer slots and iterations, cursors, carried state, RNG, ...) and
every logged value but chars/s comes out identical to the bit.
"""

import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from support import (  # tests/ is on sys.path under pytest (no __init__.py)
    EXACT_STEPS, ROOT, XLA_EXACT, assert_bitwise_equal, assert_same_events,
    checkpoint_values, events, exact_argv, finish, latest_checkpoint_name, run_cli,
    sigint_default, start_driver, subprocess_env, wait_for)

from tf_rnn.base import config as config_lib
from tf_rnn.data import vocab as vocab_lib
from tf_rnn.run import reading
from tf_rnn.run.directory import Workdir
from tf_rnn.train import training

pytestmark = pytest.mark.usefixtures("op_determinism_restored")

# The hooks (tests/hooked_cli.py): "pause K" blocks the loop when it asks for window K+1
# (steps 1..K done, any save at K written) so that the test can SIGKILL it there;
# "kill_save K" SIGKILLs the process inside the save of checkpoint K, after its data
# files are written and before the checkpoint index names it.


def max_event_step(workdir):
    return max((s for series in events(workdir).values() for s, _ in series), default=0)


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_is_bitwise_exact(
        tmp_path, capsys, corpus, xla_exact_reference):
    """Under XLA (the default); without it, test_preemption's six SIGKILLs include kills
    between steps after a checkpoint."""
    reference = xla_exact_reference
    kill_after = random.Random(6).randint(21, EXACT_STEPS - 1)  # a step after a checkpoint
    workdir = tmp_path / "run"
    argv = exact_argv(corpus, workdir, *XLA_EXACT)
    proc, marker = start_driver(tmp_path, "pause", kill_after, argv)
    try:
        wait_for(marker, proc)
        last_checkpoint = kill_after // 20 * 20
        assert latest_checkpoint_name(workdir) == f"ckpt-{last_checkpoint}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    # Nothing was logged past the checkpoint the run will resume from.
    assert max_event_step(workdir) == last_checkpoint

    code, result, err = run_cli(capsys, *argv)  # the same command again
    assert code == 0, err
    assert f"at step {last_checkpoint}." in err and result["step"] == EXACT_STEPS
    assert_bitwise_equal(checkpoint_values(workdir), reference[1])
    assert_same_events(events(workdir), reference[2])
    assert len(list((workdir / "events").glob("*tfevents*"))) == 2  # one per process


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_save_keeps_the_previous_one(tmp_path, capsys, corpus,
                                                                 exact_reference):
    workdir = tmp_path / "run"
    proc, marker = start_driver(tmp_path, "kill_save", 40, exact_argv(corpus, workdir))
    proc.communicate(timeout=300)
    assert marker.exists() and proc.returncode == -signal.SIGKILL
    # Killed after ckpt-40's files were written, before the index named them; the
    # events up to step 40 had been flushed just before the save.
    assert (workdir / "checkpoints" / "ckpt-40.index").is_file()
    assert latest_checkpoint_name(workdir) == "ckpt-20"
    assert max_event_step(workdir) == 40
    assert Workdir(workdir).load_config().deterministic  # config and vocab intact
    assert Workdir(workdir).load_vocab().size == 27

    code, result, err = run_cli(capsys, *exact_argv(corpus, workdir))
    assert code == 0, err
    assert "at step 20." in err
    assert_bitwise_equal(checkpoint_values(workdir), exact_reference[1])
    # Steps 21-40 were logged by the killed run and again after the resume: the resume
    # dropped the first copies, so TensorBoard sees each step once.
    assert_same_events(events(workdir), exact_reference[2])


@pytest.mark.slow
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, corpus,
                                                                  exact_reference):
    workdir = tmp_path / "run"
    shutil.copytree(exact_reference[0], workdir)
    data_file = workdir / "checkpoints" / "ckpt-60.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[:50])  # a partial write

    code, ev, err = run_cli(capsys, "eval", "--workdir", str(workdir))
    assert code == 0, err
    assert "ckpt-60" in err and f"restored {workdir / 'checkpoints' / 'ckpt-40'}" in err

    code, result, err = run_cli(capsys, *exact_argv(corpus, workdir))
    assert code == 0, err
    assert "Skipped unreadable checkpoint(s) (ckpt-60" in err and "at step 40." in err
    assert_bitwise_equal(checkpoint_values(workdir), exact_reference[1])
    assert_same_events(events(workdir), exact_reference[2])


def test_no_loadable_checkpoint_is_an_error_that_changes_nothing(tmp_path, capsys, corpus,
                                                                 exact_reference):
    workdir = tmp_path / "run"
    shutil.copytree(exact_reference[0], workdir)
    for data_file in (workdir / "checkpoints").glob("*.data-*"):
        data_file.write_bytes(b"")
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    code, _, err = run_cli(capsys, *exact_argv(corpus, workdir, "--steps", "80"))
    assert code == 2 and "Traceback" not in err
    assert err.startswith("tf-rnn: error: No checkpoint in") and "can be restored" in err
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


KILL_IN_WRITE = r"""
import os, signal, sys
from tf_rnn.base import config
from tf_rnn.data import vocab
from tf_rnn.run import directory
w = directory.Workdir(sys.argv[2])
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # the rename never happens
if sys.argv[1] == "config":
    w.save_config(config.Config(num_nodes=99))
else:
    w.save_vocab(vocab.Vocabulary("xyz"))
"""


@pytest.mark.parametrize("what", ["config", "vocab"])
def test_sigkill_inside_a_config_or_vocab_save_keeps_the_old_file(tmp_path, what):

    w = Workdir(tmp_path / "run").create()
    w.save_config(config_lib.Config(num_nodes=16))
    w.save_vocab(vocab_lib.Vocabulary.text8())
    proc = subprocess.run([sys.executable, "-c", KILL_IN_WRITE, what, str(w.path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    aside = list(w.path.glob(f".{what}.json.*.tmp"))  # the new text was written aside...
    assert len(aside) == 1 and ("99" if what == "config" else "xyz") in aside[0].read_text()
    assert w.load_config().num_nodes == 16  # ...and the old file is whole
    assert w.load_vocab() == vocab_lib.Vocabulary.text8()


def _divergence_argv(corpus, workdir, *extra):
    return ["train", "--preset", "text8_arch1", "--data", str(corpus), "--workdir",
            str(workdir), "--steps", "30", "--no-progress", "--set", "num_nodes=8",
            "--set", "batch_size=4", "--set", "num_unrollings=10", "--set", "log_every=1",
            "--set", "checkpoint_every=10", "--set", "eval_every=0", "--set",
            "sample_every=0", "--set", "sample_length=5", "--set", "learning_rate=1e30",
            "--set", "decay_rate=1", "--set", "optimizer=sgd", *extra]


@pytest.mark.slow
def test_divergence_guard_restores_lowers_the_rate_and_continues(tmp_path, capsys, corpus):
    # SGD at 1e30 blows the weights up in one step: step 2 is non-finite. The guard goes
    # back to ckpt-0 with the rate scaled by 1e-30 (so 1.0) and the run continues.
    workdir = tmp_path / "run"
    code, result, err = run_cli(capsys, *_divergence_argv(
        corpus, workdir, "--set", "recovery_lr_factor=1e-30", "--set", "max_recoveries=2"))
    assert code == 0, err
    assert "Non-finite loss or gradient at step 2: weights not updated" in err
    assert "(step 0)" in err and "recovery 1/2" in err
    assert result["recoveries"] == 1 and result["step"] == 30 and np.isfinite(result["loss"])
    logged = events(workdir)
    steps = [s for s, _ in logged["train/loss"]]
    assert steps == list(range(1, 31))  # step 1 of the diverged attempt was dropped
    lr = [value(p) for _, p in logged["train/learning_rate"]]
    assert lr == pytest.approx([1.0] * 30)
    weights = checkpoint_values(workdir)[1]
    assert all(np.isfinite(v).all() for n, v in weights.items() if "model" in n)


def value(serialized):
    """The float of a serialized scalar TensorProto."""
    proto = tf.make_tensor_proto(0.0)
    proto.ParseFromString(serialized)
    return float(tf.make_ndarray(proto))


@pytest.mark.slow
def test_divergence_guard_gives_up_with_a_clear_message(tmp_path, capsys, corpus):
    workdir = tmp_path / "run"
    code, _, err = run_cli(capsys, *_divergence_argv(corpus, workdir,
                                                   "--set", "max_recoveries=2"))
    assert code == 2 and "Traceback" not in err
    assert err.count("Non-finite loss") == 2
    message = err.strip().splitlines()[-1]
    assert message.startswith("tf-rnn: error: The loss became non-finite at step 2 and "
                              "stayed so after 2 restore(s)")
    assert "--set learning_rate=" in message
    # The last good checkpoint is still there and usable.
    assert latest_checkpoint_name(workdir) == "ckpt-0"
    code, _, err = run_cli(capsys, "sample", "--workdir", str(workdir), "--length", "5")
    assert code == 0, err


@pytest.mark.slow
def test_same_seed_same_losses_for_50_steps(tmp_path, corpus):
    def losses(name, seed):
        config = config_lib.get_preset("text8_arch1").replace(
            num_nodes=16, batch_size=4, num_unrollings=10, steps=50, log_every=1,
            eval_every=0, sample_every=0, sample_length=5, seed=seed, deterministic=True)
        training.train(config, tmp_path / name, str(corpus), progress=False)
        series = events(tmp_path / name)["train/loss"]
        assert [s for s, _ in series] == list(range(1, 51))
        return [value(p) for _, p in series]

    first, second = losses("a", 0), losses("b", 0)
    assert first == second  # to the bit
    assert len(set(first)) > 40  # and they are real, changing losses


@pytest.mark.slow
def test_ctrl_c_exits_130_and_keeps_a_checkpoint_to_resume_from(tmp_path, capsys, corpus):
    """README: Ctrl-C exits 130 and keeps the last checkpoint. A real SIGINT to a real
    `python -m tf_rnn train` once it has saved a checkpoint past step 0 (without
    XLA: the signal meets the same loop, and neither process waits on a compile)."""
    workdir = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--workdir", str(workdir), "--steps", "1000000",
            "--no-progress", "--set", "num_nodes=8", "--set", "batch_size=4",
            "--set", "num_unrollings=5", "--set", "checkpoint_every=5", "--set",
            "eval_every=0", "--set", "sample_every=0", "--set", "log_every=5",
            "--set", "jit_compile=false"]
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "tf_rnn", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            state = tf.train.get_checkpoint_state(str(workdir / "checkpoints"))
            if state and not state.model_checkpoint_path.endswith("ckpt-0"):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = finish(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and not out  # a message, no JSON result
    kept = int(latest_checkpoint_name(workdir).split("-")[1])
    assert kept >= 5
    reading.load_model(workdir)  # the kept checkpoint loads...
    code, result, err = run_cli(capsys, *[*argv[:5], "--steps", str(kept + 5), *argv[7:]])
    assert code == 0, err  # ...and the run resumes from it
    assert f"at step {kept}." in err and result["step"] == kept + 5
