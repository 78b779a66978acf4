"""What the test modules share that is not a fixture (the fixtures are in conftest.py).

    from support import ROOT, words, tiny, run_cli   # tests/ is on sys.path under pytest

A test module imports from here and from conftest's fixtures, never from another test
module.
"""

import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from hooked_cli import DRIVER

from tf_rnn import cli  # imports no TensorFlow (nor does this module, until a run is read)

ROOT = pathlib.Path(__file__).resolve().parents[1]
LEXICON = ("the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away")

# The tiny run most tests train: a few thousand parameters, no validation or samples
# unless a test asks, a checkpoint every 10 steps, and no XLA: compiling the train step
# costs ~3 s per run (a preset's jit_compile=true included), which a test about what the
# run does would pay for nothing. A test about the compiled step asks for
# `jit_compile=True` (or None: the preset's own value), or adds XLA_EXACT.
TINY_SETTINGS = {"num_nodes": 8, "batch_size": 4, "num_unrollings": 10, "log_every": 10,
                 "eval_every": 0, "sample_every": 0, "checkpoint_every": 10,
                 "sample_length": 5, "jit_compile": False}


def words(chars, seed=0, lexicon=LEXICON):
    """`chars` characters of space-separated words from `lexicon` (no 'b', 'z'...)."""
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(list(lexicon), size=chars // 3))[:chars]


def write_corpus(path, chars=20000, seed=0, lexicon=LEXICON):
    """Writes `words(chars, seed, lexicon)` to `path`; returns the path."""
    path.write_text(words(chars, seed, lexicon), encoding="utf-8")
    return path


def settings(**changes):
    """The tiny run's settings with `changes` (None: the preset's own value), as
    `key=value` strings (--set's values)."""
    merged = {**TINY_SETTINGS, **changes}
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in merged.items() if v is not None]


def tiny(**changes):
    """The tiny run's train flags: `--set key=value` for each setting, and --no-progress."""
    flags = []
    for setting in settings(**changes):
        flags += ["--set", setting]
    return flags + ["--no-progress"]


def run_cli(capsys, *argv):
    """Runs `tf-rnn argv` in this process: (exit status, its JSON result or None, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out.strip().splitlines()[-1]) if code == 0 else None), err


def assert_export_scores_as_eval(capsys, workdir, export_dir, text, tmp_path):
    """The export's `score` of `text` is `tf-rnn eval --split all --batch-size 1` of the
    run on it (one stream from the zero state); returns eval's result."""
    import tensorflow as tf

    path = tmp_path / "scored.txt"
    path.write_text(text, encoding="utf-8")
    code, ev, err = run_cli(capsys, "eval", "--workdir", workdir, "--data", path, "--split",
                            "all", "--batch-size", "1")
    assert code == 0 and ev["chars"] == len(text) - 1, err
    loaded = tf.saved_model.load(str(export_dir))  # held: its functions use it
    bpc = loaded.score(tf.constant([text]))["bpc"].numpy()[0]
    assert bpc == pytest.approx(ev["bpc"], abs=1e-4)
    return ev


def subprocess_env(**changes):
    """os.environ with the checkout first on PYTHONPATH (a child imports this tf_rnn)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **changes}


def free_ports(count):
    """`count` TCP ports on 127.0.0.1 that nothing listens on (for a local cluster)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def assert_central_differences(loss, args, analytic, names, eps=1e-6, tolerance=1e-6):
    """Each analytic gradient within `tolerance` (relative) of loss's central differences.

    Args:
      loss: f(*args) -> float.
      args: the float64 tensors at which to differentiate.
      analytic: the gradient of loss with respect to each of args.
    """
    args = [a.numpy() for a in args]
    for i, grad in enumerate(analytic):
        numeric = np.zeros_like(args[i])
        for idx in np.ndindex(args[i].shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            numeric[idx] = (loss(*plus) - loss(*minus)) / (2 * eps)
        error = np.linalg.norm(numeric - grad.numpy()) / np.linalg.norm(numeric)
        assert error < tolerance, (names[i], error)


def assert_variable_gradients(loss, variables, eps=1e-6, tolerance=1e-6):
    """The tape's gradient of `loss()` for each tf.Variable of `variables` within
    `tolerance` (relative) of central differences; returns the gradients."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss()
    grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(value, variables)]
    for v, g in zip(variables, grads):
        flat = v.numpy().ravel()
        numeric = np.zeros_like(flat)
        for i in range(flat.size):
            plus, minus = flat.copy(), flat.copy()
            plus[i] += eps
            minus[i] -= eps
            v.assign(plus.reshape(v.shape))
            up = float(loss())
            v.assign(minus.reshape(v.shape))
            numeric[i] = (up - float(loss())) / (2 * eps)
            v.assign(flat.reshape(v.shape))
        error = np.linalg.norm(numeric - g.ravel()) / np.linalg.norm(numeric)
        assert error < tolerance, (v.path, error)
    return grads


# Runs compared to the bit -------------------------------------------------------------

EXACT_STEPS = 60
# Bitwise-deterministic tiny runs; log_every does not divide checkpoint_every, so a
# resume lands inside a logging interval. Without XLA: each of the many processes these
# tests start saves its compile (~3 s); XLA_EXACT is the same run compiled, which
# test_reliability's first SIGKILL test resumes to the bit as well. Without diagnostics
# (which follow eval_every by default): each process would trace the gradient probe
# (1-2 s); their resume, each step once, is test_diagnostics'.
EXACT_SETTINGS = dict(num_nodes=16, log_every=7, eval_every=10, sample_every=10,
                      checkpoint_every=20, sample_length=20, deterministic=True,
                      diag_every=0)
XLA_EXACT = ("--set", "jit_compile=true")


def exact_argv(corpus, workdir, *extra):
    """`train` of EXACT_STEPS steps of the bitwise-deterministic tiny run."""
    return ["train", "--data", str(corpus), "--workdir", str(workdir), "--steps",
            str(EXACT_STEPS), *tiny(**EXACT_SETTINGS), *extra]


def checkpoint_values(workdir):
    """(name, {variable: value}) of the latest checkpoint of `workdir`."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    names = [n for n in reader.get_variable_to_shape_map()
             if n != "_CHECKPOINTABLE_OBJECT_GRAPH"]  # metadata, not a variable
    return os.path.basename(path), {n: reader.get_tensor(n) for n in names}


def latest_checkpoint_name(workdir):
    import tensorflow as tf

    return os.path.basename(tf.train.latest_checkpoint(str(workdir / "checkpoints")))


def assert_bitwise_equal(got, want):
    """Two `checkpoint_values`: the same checkpoint, every variable equal to the bit."""
    assert got[0] == want[0]
    assert sorted(got[1]) == sorted(want[1])
    differ = [n for n in want[1] if got[1][n].dtype != want[1][n].dtype
              or got[1][n].tobytes() != want[1][n].tobytes()]
    assert not differ, differ
    assert any("optimizer" in n for n in want[1]) and "rng/_state_var/.ATTRIBUTES/" \
        "VARIABLE_VALUE" in want[1]


SAVE_COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def assert_same_training_state(workdir, reference):
    """Every variable of the latest checkpoint bitwise equal to the reference's
    (`checkpoint_values`, as `reference[1]`), except `save_counter`: how many saves this
    run made (a preempted run made one more)."""
    got, want = checkpoint_values(workdir), reference[1]
    assert_bitwise_equal((got[0], {n: v for n, v in got[1].items() if n != SAVE_COUNTER}),
                         (want[0], {n: v for n, v in want[1].items() if n != SAVE_COUNTER}))


def events(workdir):
    """{tag: [(step, serialized tensor)]} as TensorBoard's own loader reads them."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(workdir / "events"), size_guidance={
        event_accumulator.TENSORS: 0})
    acc.Reload()
    return {tag: [(e.step, e.tensor_proto.SerializeToString()) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]}


def assert_same_events(got, want):
    """Two `events`: the same tags and steps, no duplicates, every value equal to the bit
    (chars/s, a measurement of the process and not of the run, at the same steps)."""
    assert sorted(got) == sorted(want)
    for tag in want:
        steps = [s for s, _ in got[tag]]
        assert steps == sorted(set(steps)), (tag, steps)  # no duplicates, in order
        if tag == "train/chars_per_sec":
            assert steps == [s for s, _ in want[tag]]
        else:
            assert got[tag] == want[tag], tag


# A training process stopped at a hook (tests/hooked_cli.py) ---------------------------

def start_driver(tmp_path, mode, k, argv, env=None):
    """`tf-rnn argv` in a child process with the hook `mode k`; (process, marker path):
    the marker appears once the child reached the hook."""
    marker = tmp_path / f"{mode}-{k}-{random.random():.9f}.marker"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, mode, str(k), str(marker), *argv],
                            cwd=ROOT, env=env or subprocess_env(TF_CPP_MIN_LOG_LEVEL="2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, marker


def wait_for(marker, proc, timeout=300):
    """Waits until `marker` exists; fails with the child's stderr if it ended first."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            break
        assert time.monotonic() < deadline, "the driver never reached its hook"
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()[1]


def sigint_default():
    """A child's `preexec_fn`: SIGINT as a terminal sends it, even where the test runner
    was started with SIGINT ignored (a background job), which the child would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc, timeout=300):
    """The child's (stdout, stderr) once it ends; killed if it outlives `timeout`."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
