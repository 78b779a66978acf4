"""The best checkpoint: the run keeps the weights of its lowest validation BPC in
WORKDIR/best/, eval / sample / export / diagnose read it with --checkpoint best, and a
killed run resumes with the same "is this the best?" decisions.

Most tests fake the validation (`Trainer._validate` returns a chosen BPC per step), so
that the best is where the test puts it: a tiny run's real BPC mostly only falls.
"""

import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config
from hooked_cli import DRIVER
from support import (ROOT, assert_bitwise_equal, checkpoint_values, run_cli, settings,
                     subprocess_env, tiny)

from tf_rnn import cli
from tf_rnn.base.errors import ArgumentError, WorkdirError
from tf_rnn.run import checkpoint, reading
from tf_rnn.run.directory import Workdir
from tf_rnn.train import training

# Not monotone: the best is step 15 (2.2), between checkpoints, with worse ones before
# and after it.
FAKED = {5: 3.0, 10: 2.5, 15: 2.2, 20: 2.7, 25: 2.4, 30: 2.6}
# Without XLA: the best's bookkeeping does not depend on it, and each run (five of them in
# this module, one a fresh process) saves its compile.
SETTINGS = dict(eval_every=5, checkpoint_every=10, jit_compile=False)


def fake_validation(monkeypatch, bpcs):
    monkeypatch.setattr(training.Trainer, "_validate", lambda self: bpcs[self.step])


def train_argv(corpus, workdir, steps, **changes):
    return ["train", "--data", str(corpus), "--workdir", str(workdir), "--steps", str(steps),
            *tiny(**{**SETTINGS, **changes})]


def model_values(path):
    """{name: value} of the model variables of the checkpoint at `path`."""
    reader = tf.train.load_checkpoint(str(path))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
            if n.startswith("model/") and n.endswith("VARIABLE_VALUE")}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)


def best_files(workdir):
    return sorted(p.name for p in (workdir / "best").iterdir())


@pytest.fixture(scope="module")
def faked(tmp_path_factory, corpus):
    """The faked run of 30 steps, and beside it (WORKDIR/../to15) the same run stopped at
    step 15: its ckpt-15 holds the weights the best must hold (deterministic=true)."""
    root = tmp_path_factory.mktemp("faked")
    was = tf_config.is_op_determinism_enabled()
    with pytest.MonkeyPatch.context() as mp:
        fake_validation(mp, FAKED)
        for name, steps in (("run", 30), ("to15", 15)):
            config = cli.resolve_config(None, steps, settings(**SETTINGS, deterministic=True))
            assert training.train(config, root / name, str(corpus), progress=False)
    if not was:
        tf_config.disable_op_determinism()
    return root / "run"


@pytest.mark.slow  # the module's faked run: ~8 s
def test_the_lowest_validation_is_kept_and_only_it(faked):
    assert best_files(faked) == ["best-15.data-00000-of-00001", "best-15.index",
                                 "checkpoint"]
    state = tf.train.get_checkpoint_state(str(faked / "best"))
    assert list(state.all_model_checkpoint_paths) == [str(faked / "best" / "best-15")]
    latest = checkpoint_values(faked)[1]  # what a resume restores decides from it
    assert latest["best_step/.ATTRIBUTES/VARIABLE_VALUE"] == 15
    assert latest["best_bpc/.ATTRIBUTES/VARIABLE_VALUE"] == 2.2
    # Its weights are step 15's (held from the validation to the save at step 20), not
    # those of the checkpoint that wrote it (premise: they differ).
    best = model_values(faked / "best" / "best-15")
    at15 = model_values(faked.parent / "to15" / "checkpoints" / "ckpt-15")
    assert same(best, at15) and not same(at15, model_values(faked / "checkpoints" / "ckpt-20"))


@pytest.mark.slow  # the module's faked run: ~8 s
def test_load_model_reads_best_latest_and_numbered_checkpoints(faked):
    loaded = reading.load_model(faked, "best")
    assert loaded.checkpoint == {"which": "best", "checkpoint": str(faked / "best" / "best-15"),
                                 "step": 15, "best_valid_bpc": 2.2}
    want = model_values(faked.parent / "to15" / "checkpoints" / "ckpt-15")
    assert any(np.array_equal(v.numpy(), want[n]) for v in loaded[0].trainable_variables
               for n in want if want[n].shape == v.shape and v.shape.num_elements() > 50)
    assert reading.load_model(faked).checkpoint["step"] == 30  # latest: as before
    assert reading.load_model(faked, "ckpt-10").checkpoint["step"] == 10


def test_a_checkpoint_that_is_no_choice_is_refused_before_anything_is_read(tmp_path,
                                                                          capsys):
    with pytest.raises(ArgumentError, match=r"argument `checkpoint`, expected 'best', "
                                            r"'latest' or 'ckpt-N' .*got 'newest'"):
        reading.load_model(tmp_path / "no-run", "newest")
    code, _, err = run_cli(capsys, "sample", "--export", tmp_path, "--checkpoint", "best")
    assert code == 2 and "--checkpoint best picks a checkpoint of --workdir" in err


@pytest.mark.slow  # the module's faked run: ~8 s
def test_checkpoint_errors_are_one_clear_line(faked, tmp_path, capsys):
    with pytest.raises(WorkdirError, match=r"No checkpoint ckpt-7 in .*: the run keeps "
                                           r"ckpt-10, ckpt-20, ckpt-30, best \(best-15\)"):
        reading.load_model(faked, "ckpt-7")
    # A run without validation: no best, and the message says how to get one.
    unvalidated = tmp_path / "run"
    shutil.copytree(faked, unvalidated)
    shutil.rmtree(unvalidated / "best")
    config = json.loads((unvalidated / "config.json").read_text())
    (unvalidated / "config.json").write_text(json.dumps({**config, "eval_every": 0}))
    code, _, err = run_cli(capsys, "eval", "--workdir", unvalidated, "--checkpoint", "best")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"tf-rnn: error: The run in {str(unvalidated)!r} has no best "
                          f"checkpoint: it trains with eval_every=0") and \
        "--set eval_every=N" in err and "--checkpoint latest" in err


@pytest.mark.slow  # a run of its own
def test_eval_best_reports_its_step_and_the_recorded_bpc(tmp_path, capsys, corpus):
    # A real validation (eval_chars=0, eval_batch_size as eval's): eval of the best
    # scores exactly what training recorded for it.
    workdir = tmp_path / "run"
    code, trained, err = run_cli(capsys, *train_argv(corpus, workdir, 10, eval_every=5,
                                                     learning_rate=40))
    assert code == 0, err
    code, ev, err = run_cli(capsys, "eval", "--workdir", workdir, "--checkpoint", "best")
    assert code == 0, err
    best = tf.train.load_checkpoint(str(workdir / "best" / f"best-{ev['step']}"))
    assert ev["which"] == "best" and ev["step"] in (5, 10)
    assert ev["bpc"] == ev["best_valid_bpc"] == best.get_tensor(
        "valid_bpc/.ATTRIBUTES/VARIABLE_VALUE")
    assert ev["bpc"] == min(trained["valid_bpc"], ev["bpc"])  # the lowest of the two
    code, latest, _ = run_cli(capsys, "eval", "--workdir", workdir)
    assert latest["which"] == "latest" and latest["step"] == 10  # the default


@pytest.mark.slow  # a SavedModel save
def test_export_best_exports_the_best_weights(faked, tmp_path, capsys):
    code, info, err = run_cli(capsys, "export", "--workdir", faked, "--out", tmp_path / "x",
                              "--checkpoint", "best")
    assert code == 0, err
    assert (info["which"], info["step"], info["best_valid_bpc"]) == ("best", 15, 2.2)
    exported = [v.numpy() for v in tf.saved_model.load(str(tmp_path / "x")).model_variables]
    kernels = {n: v for n, v in model_values(faked.parent / "to15" / "checkpoints"
                                             / "ckpt-15").items()
               if v.size > 50}
    latest = model_values(faked / "checkpoints" / "ckpt-30")
    for name, value in kernels.items():
        assert any(np.array_equal(value, e) for e in exported), name
        assert not any(np.array_equal(latest[name], e) for e in exported), name


# Resume after SIGKILL --------------------------------------------------------------------

# The best is step 10 and step 40 (written just before ckpt-40, inside whose save the
# first process dies); the resumed run replays 21..40 from ckpt-20.
KILLED = {5: 3.0, 10: 2.0, 15: 2.5, 20: 2.6, 25: 2.4, 30: 2.7, 35: 2.3, 40: 1.5}
EXACT = dict(num_nodes=16, eval_every=5, checkpoint_every=20, log_every=7,
             deterministic=True)
FAKE_IN_DRIVER = ("from tf_rnn.train import training as _t\n"
                  f"_t.Trainer._validate = lambda self: {KILLED!r}[self.step]\n")


def best_values(workdir):
    path = tf.train.latest_checkpoint(str(workdir / "best"))
    reader = tf.train.load_checkpoint(path)
    return path.rsplit("/", 1)[-1], {n: reader.get_tensor(n).tobytes()
                                     for n in reader.get_variable_to_shape_map()
                                     if n != "_CHECKPOINTABLE_OBJECT_GRAPH"}  # metadata


@pytest.mark.slow
@pytest.mark.usefixtures("op_determinism_restored")
def test_sigkill_between_the_best_and_its_checkpoint_resumes_the_same_decisions(
        tmp_path, capsys, corpus, monkeypatch):
    argv = lambda w: train_argv(corpus, w, 40, **EXACT)  # noqa: E731
    fake_validation(monkeypatch, KILLED)
    code, _, err = run_cli(capsys, *argv(tmp_path / "reference"))
    assert code == 0, err

    killed = tmp_path / "killed"
    marker = tmp_path / "marker"
    proc = subprocess.run([sys.executable, "-c", FAKE_IN_DRIVER + DRIVER, "kill_save", "40",
                           str(marker), *map(str, argv(killed))], cwd=ROOT, timeout=300,
                          env=subprocess_env(TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True)
    assert proc.returncode == -signal.SIGKILL and marker.exists(), proc.stderr[-2000:]
    # Premise: best-40 is on disk and listed, but ckpt-20 (resumed from) records step 10.
    assert "best-40.index" in best_files(killed) and "best-10.index" in best_files(killed)
    assert tf.train.latest_checkpoint(str(killed / "checkpoints")).endswith("ckpt-20")
    # Restoring ckpt-20 drops best-40 at once: a reader (or a second crash) before the
    # resumed run's next save sees the best that ckpt-20 records.
    peek = Workdir(shutil.copytree(killed, tmp_path / "peek"))
    run = checkpoint.Run(peek.load_config(), peek.load_vocab().size, peek)
    assert run.restore().endswith("ckpt-20")
    assert best_files(peek.path) == ["best-10.data-00000-of-00001", "best-10.index",
                                     "checkpoint"]

    # A rerun that validates as before: to the bit what the uninterrupted run kept.
    again = tmp_path / "again"
    shutil.copytree(killed, again)
    code, _, err = run_cli(capsys, *argv(again))
    assert code == 0 and "at step 20." in err, err
    assert_bitwise_equal(checkpoint_values(again), checkpoint_values(tmp_path / "reference"))
    assert best_values(again) == best_values(tmp_path / "reference")
    assert best_files(again) == ["best-40.data-00000-of-00001", "best-40.index", "checkpoint"]

    # A rerun whose step-40 validation is no best (as a non-deterministic one may be):
    # best-40 of the lost run is gone, and step 25 (2.4) is no best either, because the
    # resumed run decides from step 10's 2.0, which ckpt-20 restored.
    fake_validation(monkeypatch, {**KILLED, 40: 2.5})
    code, _, err = run_cli(capsys, *argv(killed))
    assert code == 0, err
    assert best_files(killed) == ["best-10.data-00000-of-00001", "best-10.index",
                                  "checkpoint"]
    assert reading.load_model(killed, "best").checkpoint["step"] == 10
