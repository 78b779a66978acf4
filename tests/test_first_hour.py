"""What a new user tripped over (issue 18, items 1, 2, 4 and 5): a resumed run keeps its
corpus, a model too large for the machine is one line before it is built, chars/s is the
train step's alone, every JSON line is strict, files get the umask's mode, and Ctrl-C
while TensorFlow imports exits 130 without a traceback."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from support import finish, sigint_default, subprocess_env, tiny, wait_for, words

from tf_rnn import cli, models
from tf_rnn.base import config, jsonl
from tf_rnn.data import text8, textio
from tf_rnn.inspect import diagnostics
from tf_rnn.run import checkpoint, resources
from tf_rnn.train import training

# Without XLA: nothing here is about the compiled step, and each of the module's ten
# trainings saves its compile.
TINY = tiny(log_every=5)


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """No test here may reach text8's download: it would mean the wrong corpus."""
    def refuse(*args, **kwargs):
        raise AssertionError("text8 download attempted")
    monkeypatch.setattr(text8, "_fetch", refuse)


@pytest.fixture
def corpora(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(words(6000, seed=1), encoding="utf-8")
    b.write_text(words(6000, seed=2), encoding="utf-8")
    return a, b


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def error_line(capsys, *argv):
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tf-rnn: error: "), err
    return lines[0]


def snapshot(workdir):
    """Every file of a work directory but the lock: name -> bytes."""
    return {p.relative_to(workdir): p.read_bytes() for p in sorted(workdir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


# 1. A resumed run keeps its corpus ----------------------------------------------------

@pytest.mark.slow
def test_resume_without_data_trains_on_the_recorded_corpus(tmp_path, corpora, capsys):
    a, _ = corpora
    w = tmp_path / "run"
    assert run(capsys, "train", "--data", a, "--workdir", w, "--steps", 10, *TINY)[0] == 0
    code, out, err = run(capsys, "train", "--workdir", w, "--steps", 20, "--no-progress")
    assert code == 0, err
    assert last_json(out)["step"] == 20
    assert json.loads((w / "run.json").read_text())["data"] == str(a)
    # Equal to the run's step: its figures from its own corpus, nothing written.
    before = snapshot(w)
    code, out, err = run(capsys, "train", "--workdir", w, "--steps", 20, "--no-progress")
    assert code == 0, err
    assert last_json(out)["valid_bpc"] is not None and snapshot(w) == before
    line = error_line(capsys, "train", "--workdir", w, "--steps", 5)
    assert "already at step 20" in line and snapshot(w) == before


@pytest.mark.slow
def test_resume_on_another_corpus_is_refused_naming_both(tmp_path, corpora, capsys):
    a, b = corpora
    w = tmp_path / "run"
    assert run(capsys, "train", "--data", a, "--workdir", w, "--steps", 10, *TINY)[0] == 0
    before = snapshot(w)
    line = error_line(capsys, "train", "--workdir", w, "--data", b, "--steps", 20)
    for path in (a, b):
        assert str(path) in line and textio.file_sha256(path) in line, line
    assert "--allow-new-corpus" in line and "--workdir" in line
    assert snapshot(w) == before  # run.json included: nothing was rewritten

    moved = tmp_path / "moved.txt"  # the same text elsewhere is the same corpus
    moved.write_bytes(a.read_bytes())
    assert run(capsys, "train", "--workdir", w, "--data", moved, "--steps", 15)[0] == 0
    assert json.loads((w / "run.json").read_text())["data"] == str(moved)

    code, _, err = run(capsys, "train", "--workdir", w, "--data", b, "--steps", 20,
                       "--allow-new-corpus")
    assert code == 0, err
    assert json.loads((w / "run.json").read_text())["sha256"] == textio.file_sha256(b)


@pytest.mark.slow
def test_a_changed_file_at_the_recorded_path_gets_a_note(tmp_path, corpora, capsys):
    a, _ = corpora
    w = tmp_path / "run"
    assert run(capsys, "train", "--data", a, "--workdir", w, "--steps", 10, *TINY)[0] == 0
    a.write_text(words(6000, seed=3), encoding="utf-8")
    code, _, err = run(capsys, "train", "--workdir", w, "--steps", 20, "--no-progress")
    assert code == 0 and "has changed since the run was trained" in err, err
    assert "training on it anyway" in err


# 2. A model that cannot fit is an error before it is built -----------------------------

@pytest.mark.parametrize("preset", config.PRESETS)
def test_the_estimate_counts_the_models_weights_exactly(preset):
    c = config.get_preset(preset).replace(num_nodes=23, init="glorot")
    model = models.build_model(c, 31)
    assert resources.model_size(c, 31) == (model.count_params(), model.state_size)


def test_a_model_too_large_is_one_line_and_nothing_is_written(tmp_path, corpora, capsys):
    a, _ = corpora
    w = tmp_path / "run"
    line = error_line(capsys, "train", "--data", a, "--workdir", w,
                      "--set", "num_nodes=100000")
    assert "needs about" in line and "GiB available" in line, line
    needed = float(line.split("needs about ")[1].split(" GiB")[0])
    assert needed > 300  # 2·10^10 weights of 4 bytes, and gradients and slots
    assert not (w / "checkpoints").exists() and not (w / "config.json").exists()


def test_check_fits_compares_the_estimate_with_what_is_available():
    c = config.get_preset("text8_arch1")
    need = resources.training_bytes(c, 27)
    resources.check_fits(c, 27, available=need + 1)
    with pytest.raises(resources.ModelTooLarge, match="needs about"):
        resources.check_fits(c, 27, available=need - 1)


def test_an_out_of_memory_error_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[100000,100000]\nmore detail")
    monkeypatch.setattr(training, "train", exhausted)
    line = error_line(capsys, "train", "--workdir", tmp_path / "run")
    assert "out of memory" in line and "num_nodes" in line


# 4. chars/s is the train step's ---------------------------------------------------------

@pytest.mark.slow
def test_chars_per_sec_leaves_out_diagnostics_samples_and_saves(tmp_path, corpora,
                                                                monkeypatch):
    a, _ = corpora
    pause, steps = 0.3, 8
    measure = diagnostics.TrainingDiagnostics.measure

    def slow_measure(self, *args):
        time.sleep(pause)
        return measure(self, *args)

    save = checkpoint.Run.save

    def slow_save(self, *args):
        time.sleep(pause)
        return save(self, *args)

    monkeypatch.setattr(diagnostics.TrainingDiagnostics, "measure", slow_measure)
    monkeypatch.setattr(checkpoint.Run, "save", slow_save)
    c = config.get_preset("text8_arch1").replace(
        num_nodes=8, batch_size=4, num_unrollings=10, steps=steps, eval_every=0,
        sample_every=1, sample_length=5, checkpoint_every=1, diag_every=1, log_every=1,
        jit_compile=False)
    result = training.train(c, tmp_path / "run", str(a), progress=False)
    timed = (steps - 1) * 4 * 10 / result["chars_per_sec"]  # seconds the figure counts
    # The sleeps alone are 2·pause a step; the tiny step itself takes milliseconds.
    assert timed < (steps - 1) * pause / 2, (timed, result)


# 5. Output that tools can read ----------------------------------------------------------

def strict_loads(line):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(line, parse_constant=refuse)


def test_jsonl_writes_non_finite_figures_as_null_and_names_them():
    line = jsonl.dumps({"bpc": float("nan"), "rows": [1.0, float("inf")],
                        "radius": np.float32("-inf"), "n": np.int64(3), "ok": 2.5})
    obj = strict_loads(line)
    assert obj["bpc"] is None and obj["rows"] == [1.0, None] and obj["radius"] is None
    assert obj["n"] == 3 and obj["ok"] == 2.5
    assert obj["nonfinite"] == {"bpc": "nan", "rows[1]": "inf", "radius": "-inf"}
    assert strict_loads(jsonl.dumps({"a": 1})) == {"a": 1}


def test_a_commands_json_line_is_strict(capsys):
    code = cli.run_and_report(lambda args: {"loss": math.nan}, type("A", (), {})())
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0 and strict_loads(out) == {"loss": None, "nonfinite": {"loss": "nan"}}


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_run_files_get_the_umasks_mode(tmp_path, corpora, capsys, umask):
    a, _ = corpora
    w = tmp_path / "run"
    old = os.umask(umask)
    try:
        assert run(capsys, "train", "--data", a, "--workdir", w, "--steps", 10, *TINY)[0] == 0
    finally:
        os.umask(old)
    for name in ("config.json", "run.json", "vocab.json"):
        assert (w / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


@pytest.mark.slow
def test_ctrl_c_while_tensorflow_imports_exits_130_without_a_traceback(tmp_path):
    """A real SIGINT to `tf-rnn eval` while its `import tensorflow` is under way. The
    child holds that import open (a meta-path hook waits inside it once TensorFlow's
    own package starts loading) until the signal comes, so the moment does not depend
    on how fast the machine is."""
    marker = tmp_path / "importing"
    driver = (
        "import sys, time\n"
        "class Hold:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow.python':\n"
        f"            open({str(marker)!r}, 'w').close()\n"
        "            time.sleep(300)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hold())\n"
        "from tf_rnn import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", driver, "eval", "--workdir",
                             str(tmp_path / "none")], stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), cwd=tmp_path, preexec_fn=sigint_default)
    try:
        wait_for(marker, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = finish(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
