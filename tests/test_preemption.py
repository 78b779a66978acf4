"""Runs on shared and preemptible machines: SIGTERM / SIGINT, two writers, a full disk,
hand-damaged files, and many kills in a row.

Real `tf-rnn train` subprocesses receive real signals; the lock is a real `flock`; the
full disk is a real `RLIMIT_FSIZE`. Every resumed run is compared bitwise with an
uninterrupted one (`deterministic=true`), TensorBoard events as TensorBoard reads them.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from support import (  # tests/ is on sys.path under pytest (no __init__.py)
    EXACT_STEPS, ROOT, assert_bitwise_equal, assert_same_events, assert_same_training_state,
    checkpoint_values, events, exact_argv, finish, free_ports, latest_checkpoint_name, run_cli,
    sigint_default, start_driver, subprocess_env, tiny, wait_for)

from tf_rnn.run import reading

pytestmark = pytest.mark.usefixtures("op_determinism_restored")


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("tf-rnn:")]


def up_to(logged, step):
    """The events of `logged` ({tag: [(step, value)]}) at steps <= `step`."""
    kept = {tag: [(s, v) for s, v in series if s <= step] for tag, series in logged.items()}
    return {tag: series for tag, series in kept.items() if series}


# 1. Preemption ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_the_current_step_and_the_resume_is_bitwise_exact(
        tmp_path, capsys, corpus, exact_reference, signum, code):
    k = 26 if signum == signal.SIGTERM else 33  # inside a checkpoint interval (20)
    workdir = tmp_path / "run"
    argv = exact_argv(corpus, workdir)
    proc, marker = start_driver(tmp_path, "pause", k, argv)
    try:
        wait_for(marker, proc)
        proc.send_signal(signum)  # while step k+1 is under way
        (tmp_path / (marker.name + ".go")).touch()
    finally:
        _, err = finish(proc)
    assert proc.returncode == code, err[-3000:]
    name = signal.Signals(signum).name
    assert error_lines(err) == [
        f"tf-rnn: stopped by {name} at step {k + 1}: checkpoint "
        f"{workdir / 'checkpoints' / f'ckpt-{k + 1}'} written, TensorBoard events flushed. "
        f"Run the same command to resume."], err[-3000:]
    assert latest_checkpoint_name(workdir) == f"ckpt-{k + 1}"
    assert_same_events(events(workdir), up_to(exact_reference[2], k + 1))  # flushed, no more

    code, result, err = run_cli(capsys, *argv)  # the same command again
    assert code == 0, err
    assert f"at step {k + 1}." in err and result["step"] == EXACT_STEPS
    assert_same_training_state(workdir, exact_reference)
    assert_same_events(events(workdir), exact_reference[2])


# 1c. A signal during the last step's validation, sample or save, or after it ----------

# `tf-rnn ARGV` that pauses in PHASE of step LAST (the last), writes MARKER and waits
# there until MARKER.go exists: its validation, its sample, inside its checkpoint save
# (events written, the checkpoint not yet), or in the figures after the loop.
LAST_STEP_DRIVER = r"""
import os, sys, time
from tf_rnn import cli
from tf_rnn.run import checkpoint
from tf_rnn.train import training

phase, last, marker, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]

def pause():
    open(marker, "w").close()
    while not os.path.exists(marker + ".go"):
        time.sleep(0.05)

if phase == "save":
    save = checkpoint.save_checkpoint
    def pausing_save(manager, step):
        if step == last:
            pause()
        return save(manager, step)
    checkpoint.save_checkpoint = pausing_save
else:
    name = {"validation": "_validate", "sample": "_draw_sample", "figures": "_figures"}[phase]
    method = getattr(training.Trainer, name)
    def pausing(self, *args):
        if self.step == last:
            pause()
        return method(self, *args)
    setattr(training.Trainer, name, pausing)
sys.exit(cli.main(argv))
"""
LAST = 12


@pytest.mark.slow
@pytest.mark.parametrize("phase, signum, code", [
    ("validation", signal.SIGINT, 130),  # issue 36: Ctrl-C in the last validation
    ("save", signal.SIGINT, 130),  # (the sample between them: as these, not run again)
    ("figures", signal.SIGTERM, 143),
])
def test_a_signal_after_the_last_step_still_stops_with_its_status(
        tmp_path, capsys, corpus, phase, signum, code):
    workdir, marker = tmp_path / "run", tmp_path / f"{phase}.marker"
    argv = ["train", "--data", str(corpus), "--workdir", str(workdir), "--steps", str(LAST),
            *tiny()]  # the last step validates and samples whatever eval/sample_every say
    proc = subprocess.Popen(
        [sys.executable, "-c", LAST_STEP_DRIVER, phase, str(LAST), str(marker), *argv],
        cwd=ROOT, env=subprocess_env(TF_CPP_MIN_LOG_LEVEL="2"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    try:
        wait_for(marker, proc)
        proc.send_signal(signum)  # while the last step's PHASE is under way
        (tmp_path / (marker.name + ".go")).touch()
    finally:
        out, err = finish(proc)
    assert proc.returncode == code, err[-3000:]
    assert not out  # no figures: the run was stopped
    assert error_lines(err) == [
        f"tf-rnn: stopped by {signal.Signals(signum).name} at step {LAST}: checkpoint "
        f"{workdir / 'checkpoints' / f'ckpt-{LAST}'} written, TensorBoard events flushed. "
        f"That is its last step: the same command prints its figures."], err[-3000:]
    assert latest_checkpoint_name(workdir) == f"ckpt-{LAST}"
    assert reading.load_model(workdir).checkpoint["step"] == LAST  # on disk, and it loads
    code, result, err = run_cli(capsys, *argv)  # the same command: the figures it kept
    assert code == 0 and result["step"] == LAST, err
    assert result["loss"] is not None and result["valid_bpc"] is not None, result


# 2. Two writers -----------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_writer_is_refused_at_once_and_a_killed_holder_blocks_nothing(
        tmp_path, capsys, corpus, exact_reference):
    workdir = tmp_path / "run"
    argv = exact_argv(corpus, workdir)
    proc, marker = start_driver(tmp_path, "pause", 25, argv)
    try:
        wait_for(marker, proc)
        # The second writer runs in this process: the lock is the other process's.
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "Traceback" not in err, err
        [line] = error_lines(err)
        assert line.startswith(f"tf-rnn: error: Work directory '{workdir}' is in use by "
                               f"process {proc.pid} "), err
        code, _, err = run_cli(capsys, "export", "--workdir", str(workdir), "--overwrite")
        assert code == 2 and f"in use by process {proc.pid} " in err, err
        assert not (workdir / "export").exists()
        # Readers are welcome while it trains.
        code, result, err = run_cli(capsys, "eval", "--workdir", str(workdir))
        assert code == 0 and result["bpc"] > 0, err
        code, result, err = run_cli(capsys, "sample", "--workdir", str(workdir),
                                             "--length", "5", "--seed", "1")
        assert code == 0 and result["text"], err
        code, result, err = run_cli(capsys, "export", "--workdir", str(workdir), "--out",
                                             str(tmp_path / "elsewhere"))
        assert code == 0 and result["step"] == 20, err
    finally:
        proc.send_signal(signal.SIGKILL)
        finish(proc)
    # The kernel dropped the lock with the process: the same command goes on at once.
    code, result, err = run_cli(capsys, *argv)
    assert code == 0 and "at step 20." in err, err
    assert_same_training_state(workdir, exact_reference)


@pytest.mark.slow
def test_readers_never_see_a_half_written_checkpoint(tmp_path, corpus):
    workdir = tmp_path / "run"
    # A checkpoint every step, one kept: each save replaces the one readers load.
    argv = exact_argv(corpus, workdir, "--steps", "1000000", "--set", "checkpoint_every=1",
                      "--set", "keep_checkpoints=1", "--set", "eval_every=0",
                      "--set", "sample_every=0")
    proc, marker = start_driver(tmp_path, "pause", 3, argv)
    try:
        wait_for(marker, proc)
        (tmp_path / (marker.name + ".go")).touch()
        seen = set()
        for _ in range(25):
            loaded = reading.load_model(workdir)
            model, _, _ = loaded
            # the step of the checkpoint it loaded (reading the checkpoint file again
            # here would race the next save, which is not the reader's doing)
            seen.add(loaded.checkpoint["step"])
            assert model(tf.zeros([1, 3], tf.int32), model.zero_state(1))[0].shape == (1, 3, 27)
        assert len(seen) > 1 and proc.poll() is None  # it was saving all along
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = finish(proc)
    assert proc.returncode == 143, err[-3000:]


# 3. A full disk -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def killed_after_20(tmp_path_factory, corpus):
    """The work directory of a run SIGKILLed at step 25: ckpt-20 is its last."""
    root = tmp_path_factory.mktemp("killed")
    proc, marker = start_driver(root, "pause", 25, exact_argv(corpus, root / "run"))
    try:
        wait_for(marker, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        finish(proc)
    return root / "run"


@pytest.mark.slow
@pytest.mark.parametrize("what, limit, message", [
    ("config", 600, "Could not write config.json '{workdir}/config.json': File too large "
                    "(needs about "),
    # Above config.json (about 1.1 kB), below the events a resumed run writes first.
    ("events", 1400, "Could not write TensorBoard events to '{workdir}/events': File too "
                     "large (needs about "),
    # Above the resumed process's event file at step 40, below a checkpoint's data file
    # (25.9 kB).
    ("checkpoint", 23000, "Could not write checkpoint ckpt-40 to '{workdir}/checkpoints': "
                          "File too large (needs about "),
])
def test_a_write_that_fails_stops_with_one_line_and_the_next_run_resumes(
        tmp_path, capsys, corpus, exact_reference, killed_after_20, what, limit, message):
    workdir = tmp_path / "run"
    shutil.copytree(killed_after_20, workdir)
    proc, _ = start_driver(tmp_path, "limit", limit, exact_argv(corpus, workdir))
    _, err = finish(proc)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    [line] = error_lines(err)
    assert line.startswith("tf-rnn: error: " + message.format(workdir=workdir)), line
    number, unit = re.search(r"needs about ([\d.]+) (bytes|kB|MB)", line).groups()
    needed = float(number) * {"bytes": 1, "kB": 1e3, "MB": 1e6}[unit]
    assert needed > (limit if what != "events" else 0), line  # what the write would have taken
    assert "free there" in line and "run the same command" in line.lower() or \
        "previous version of the file is kept" in line, line
    if what == "checkpoint":
        assert "The previous checkpoint ckpt-20 is intact" in line
        assert sorted(os.listdir(workdir / "checkpoints")) == [  # no partial files left
            "checkpoint", "ckpt-0.data-00000-of-00001", "ckpt-0.index",
            "ckpt-20.data-00000-of-00001", "ckpt-20.index"]
    assert latest_checkpoint_name(workdir) == "ckpt-20"

    code, result, err = run_cli(capsys, *exact_argv(corpus, workdir))
    assert code == 0 and "at step 20." in err, err
    assert_same_training_state(workdir, exact_reference)
    assert_same_events(events(workdir), exact_reference[2])


# 6. Hand-damaged files ----------------------------------------------------------------

def _edit_json(key=None, value=None, drop_last=False):
    def edit(text):
        data = json.loads(text)
        if drop_last:
            data["chars"] = data["chars"][:-1]
        else:
            data[key] = value
        return json.dumps(data)
    return edit


DAMAGE = {  # name: (file, edit, what the message says)
    "config-not-json": ("config.json", lambda t: t[:-4], "Unterminated string"),
    "config-wrong-type": ("config.json", _edit_json("num_nodes", "many"),
                          "`num_nodes`, expected a positive integer, got 'many'"),
    "config-not-an-object": ("config.json", lambda t: "[16, 4]",
                             "expected a JSON object of config fields, got list"),
    "config-other-model": ("config.json", _edit_json("num_nodes", 17),
                           "disagrees with the checkpoint: a 'arch1' model with "
                           "num_nodes=17"),
    "vocab-not-json": ("vocab.json", lambda t: t[:-3], "is corrupt: not valid JSON"),
    "vocab-wrong-type": ("vocab.json", lambda t: "27", "is corrupt: expected a JSON object"),
    "vocab-other-size": ("vocab.json", _edit_json(drop_last=True),
                         "disagrees with the checkpoint: it holds 26 characters, but "
                         "ckpt-60 was trained on 27"),
    "run-not-json": ("run.json", lambda t: t[:-3], "Expecting"),
    "run-not-an-object": ("run.json", lambda t: "[]", "expected a JSON object, got list"),
    "run-wrong-type": ("run.json", lambda t: '{"data": 5}',
                       'field "data" must be a path or null, got 5'),
}


@pytest.mark.parametrize("command", ["train", "eval", "sample", "export"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_hand_damaged_file_stops_every_command_with_one_line(tmp_path, capsys, corpus,
                                                               exact_reference, damage, command):
    name, edit, fragment = DAMAGE[damage]
    workdir = tmp_path / "run"
    shutil.copytree(exact_reference[0], workdir)
    path = workdir / name
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    argv = {"train": ["train", "--workdir", str(workdir), "--data", str(corpus), "--steps",
                      "80", "--no-progress"],
            "eval": ["eval", "--workdir", str(workdir)],
            "sample": ["sample", "--workdir", str(workdir), "--length", "5"],
            "export": ["export", "--workdir", str(workdir), "--overwrite"]}[command]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("tf-rnn: error: "), err
    assert str(path) in err and fragment in err, err
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


# 4. Many kills ------------------------------------------------------------------------

def _restored_step(workdir):
    path = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    return int(path.rsplit("-", 1)[-1]) if path else 0


@pytest.mark.slow
def test_six_sigkills_at_random_moments_then_the_run_ends_bitwise_equal(
        tmp_path, capsys, corpus, exact_reference):
    rng = random.Random(13)
    workdir = tmp_path / "run"
    argv = exact_argv(corpus, workdir)
    # Inside a checkpoint save, inside an event write, between steps, and at any moment
    # at all (start-up, tracing, a step, a save: wherever a random delay lands): every
    # kind of moment, the kills inside a write twice each (a later one resumes from
    # what an earlier one left behind).
    plan = ["kill_save"] * 2 + ["kill_events"] * 2 + ["pause", "anytime"]
    rng.shuffle(plan)
    done = []
    for mode in plan:
        restored = _restored_step(workdir) if (workdir / "checkpoints").is_dir() else 0
        # No kill lets a process past step EXACT_STEPS - 1 or through its last save.
        assert restored < EXACT_STEPS, done
        if mode in ("kill_save", "kill_events"):
            k = rng.choice([s for s in (20, 40, EXACT_STEPS) if s > restored])
        elif mode == "pause":
            k = rng.randint(restored + 1, EXACT_STEPS - 1)
        else:  # anytime: it may never get further than its last step
            k = EXACT_STEPS - 1
        # pause counts the windows of its own process: a resumed one starts at `restored`
        # (counted from 0, a random delay let the run finish and write its last checkpoint)
        hook_k = k - restored if mode in ("pause", "anytime") else k
        proc, marker = start_driver(tmp_path, "pause" if mode == "anytime" else mode, hook_k, argv)
        try:
            if mode == "anytime":  # a random moment, not a marker
                deadline = time.monotonic() + rng.uniform(0.0, 6.0)
                while time.monotonic() < deadline and not marker.exists():
                    assert proc.poll() is None, finish(proc)[1][-3000:]
                    time.sleep(0.02)
            else:
                wait_for(marker, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            _, err = finish(proc)
        assert proc.returncode == -signal.SIGKILL, err[-3000:]
        done.append((mode, k, restored))
    assert _restored_step(workdir) < EXACT_STEPS, done  # the run was never allowed to finish

    code, result, err = run_cli(capsys, *argv)
    assert code == 0 and result["step"] == EXACT_STEPS, (err, done)
    assert_bitwise_equal(checkpoint_values(workdir), exact_reference[1])
    # Every TensorBoard step exactly once, with the values of the uninterrupted run.
    assert_same_events(events(workdir), exact_reference[2])


# 1b. Preemption of a multi-worker cluster ---------------------------------------------

MULTIWORKER = ["--preset", "text8_arch1", "--strategy", "multiworker", "--steps", "40",
               "--no-progress", "--set", "num_nodes=16", "--set", "batch_size=4",
               "--set", "num_unrollings=10", "--set", "log_every=7", "--set",
               "eval_every=10", "--set", "sample_every=0", "--set", "checkpoint_every=20"]


def _kill_leftovers(procs):
    """SIGKILLs (and reaps) the workers still running: a failed test leaves none behind."""
    for proc, _ in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _launch_workers(tmp_path, scratch, mode, k, argv):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        task = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = subprocess_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                             TMPDIR=str(scratch), TF_CONFIG=json.dumps(task))
        procs.append(start_driver(tmp_path, mode, k, argv, env=env))
    return procs


@pytest.mark.slow
def test_multiworker_sigterm_every_worker_saves_the_same_step_and_resumes(
        tmp_path, corpus, capsys):
    workdir, scratch = tmp_path / "run", tmp_path / "tmp"
    scratch.mkdir()
    argv = ["train", "--data", str(corpus), "--workdir", str(workdir), *MULTIWORKER]
    procs = _launch_workers(tmp_path, scratch, "pause", 25, argv)
    try:
        for proc, marker in procs:
            wait_for(marker, proc, timeout=420)
        for proc, _ in procs:  # the cluster is being shut down: SIGTERM to every worker
            proc.send_signal(signal.SIGTERM)
        for _, marker in procs:
            (tmp_path / (marker.name + ".go")).touch()
        outputs = [proc.communicate(timeout=420) for proc, _ in procs]
    finally:
        _kill_leftovers(procs)
    lines = []
    for (proc, _), (_, err) in zip(procs, outputs):
        assert proc.returncode == 143, err[-3000:]
        [line] = error_lines(err)
        lines.append(line)
    assert lines[0] == lines[1] and lines[0].startswith("tf-rnn: stopped by SIGTERM on a "
                                                        "worker at step ")
    step = int(lines[0].split(" at step ")[1].split(":")[0])
    assert 25 < step < 40 and latest_checkpoint_name(workdir) == f"ckpt-{step}"

    procs = _launch_workers(tmp_path, scratch, "pause", 10**6, argv)  # the same command
    try:
        outputs = [proc.communicate(timeout=420) for proc, _ in procs]
    finally:
        _kill_leftovers(procs)
    results = []
    for (proc, _), (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.splitlines()[-1]))
        assert f"at step {step}." in err and results[-1]["step"] == 40
    logged = [s for s, _ in events(workdir)["train/loss"]]
    assert logged == [7, 14, 21, 28, 35, 40]  # each step once, across the preemption
    assert os.listdir(scratch) == []  # the handler's scratch directories are gone
    # The resumed cluster ends where one device with the global batch ends uninterrupted.
    single = [a for a in argv if a not in ("--strategy", "multiworker")]
    single[single.index(str(workdir))] = str(tmp_path / "single")
    code, alone, err = run_cli(capsys, *single)
    assert code == 0, err
    assert results[0]["loss"] == results[1]["loss"]
    assert results[0]["loss"] == pytest.approx(alone["loss"], rel=1e-5)
    assert results[0]["valid_bpc"] == pytest.approx(alone["valid_bpc"], rel=1e-5)
