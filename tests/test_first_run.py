"""A new user's first hour (issue 12): quiet commands, XLA by default with a fallback,
the offline text8 message, run.json paths, rejected values, export/workdir samplers
that agree, and the experiments' shared flags."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from support import subprocess_env, tiny

from tf_rnn import cli
from tf_rnn.base import config, errors, logs
from tf_rnn.data import text8
from tf_rnn.engine import steps
from tf_rnn.run.directory import Workdir
from tf_rnn.serve import export

TINY = tiny(log_every=5)
XLA_DEFAULT = tiny(log_every=5, jit_compile=None)  # the tiny run as a user's: XLA
CHATTER = ("absl::InitializeLog", "oneDNN", "I0000", "E0000", "W0000", "port.cc",
           "cpu_feature_guard")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """A run trained 20 steps (through the CLI in this process) and its export."""
    workdir = tmp_path_factory.mktemp("runs") / "run"
    assert cli.main(["train", "--data", str(corpus), "--workdir", str(workdir),
                     "--steps", "20", *TINY]) == 0
    assert cli.main(["export", "--workdir", str(workdir)]) == 0
    return workdir


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys, *argv):
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tf-rnn: error: "), err
    return lines[0]


def quiet_env():
    """The environment of a user who set nothing: no log level, no verbose flag."""
    env = subprocess_env()
    for name in ("TF_CPP_MIN_LOG_LEVEL", logs.VERBOSE_ENV):
        env.pop(name, None)
    return env


# 2. Quiet by default ------------------------------------------------------------------

@pytest.mark.slow
def test_cli_stderr_holds_none_of_tensorflows_chatter(tmp_path, corpus):
    """A real `tf-rnn train` in a fresh process, XLA-compiled as by default: only tf_rnn's
    own lines on stderr."""
    out = subprocess.run(
        [sys.executable, "-m", "tf_rnn", "train", "--data", str(corpus), "--workdir",
         str(tmp_path / "run"), "--steps", "10", *XLA_DEFAULT], cwd=tmp_path,
        capture_output=True, text=True, timeout=300, env=quiet_env())
    assert out.returncode == 0, out.stderr
    for word in CHATTER:
        assert word not in out.stderr, out.stderr
    lines = out.stderr.splitlines()  # --no-progress: one line per log_every, no more
    assert [line.split(":")[0] for line in lines] == ["step 5/10", "step 10/10"], lines
    assert all("loss" in line and "chars/s" in line for line in lines)
    assert json.loads(out.stdout.splitlines()[-1])["step"] == 10

    bad = subprocess.run(
        [sys.executable, "-m", "tf_rnn", "eval", "--workdir", str(tmp_path / "none")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=quiet_env())
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [bad.stderr.strip()]  # the one error line
    assert bad.stderr.startswith("tf-rnn: error: No run in")


def test_native_log_lines_are_recognised():
    assert logs.is_native_log_line(
        b"I0000 00:00:1796014345.788500    3587 port.cc:153] oneDNN custom operations")
    assert logs.is_native_log_line(
        b"E0000 00:00:1796014350.321047    3587 util.cc:131] oneDNN supports DT_INT32")
    assert logs.is_native_log_line(b"WARNING: All log messages before absl::InitializeLog()"
                                   b" is called are written to STDERR")
    for own in (b"tf-rnn: error: Text file 'x' does not exist.", b"Error: 0.5",
                b"F0000 00:00:1.0  1 check.cc:1] Check failed", b"step 5/10: loss 3.2"):
        assert not logs.is_native_log_line(own)


def test_the_filter_forwards_other_lines_and_verbose_turns_it_off(monkeypatch):
    code = ("import os, sys\nfrom tf_rnn.base import logs\n"
            "with logs.native_logs_filtered('-v' in sys.argv):\n"
            "    os.write(2, b'I0000 00:00:1.5  7 port.cc:1] chatter\\nkept native\\n')\n"
            "    print('kept python', file=sys.stderr)\n")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=quiet_env(), timeout=60)
    assert sorted(quiet.stderr.splitlines()) == ["kept native", "kept python"]
    loud = subprocess.run([sys.executable, "-c", code, "-v"], capture_output=True,
                          text=True, env=quiet_env(), timeout=60)
    assert "chatter" in loud.stderr


# 1. XLA by default, with a fallback ---------------------------------------------------

@pytest.mark.slow
def test_xla_is_the_default_and_the_result_says_so(trained):
    assert config.Config().jit_compile is True
    assert all(p.jit_compile for p in config.PRESETS.values())


@pytest.mark.slow
def test_train_reports_xla_and_the_first_steps_time(capsys, tmp_path, corpus):
    code, out, err = run(capsys, "train", "--data", str(corpus), "--workdir",
                         str(tmp_path / "a"), "--steps", "3", *XLA_DEFAULT)
    result = json.loads(out.splitlines()[-1])
    assert code == 0 and result["jit_compile"] is True and result["first_step_sec"] > 0
    code, out, err = run(capsys, "train", "--data", str(corpus), "--workdir",
                         str(tmp_path / "b"), "--steps", "3", *TINY, "--set",
                         "jit_compile=false")
    assert code == 0 and json.loads(out.splitlines()[-1])["jit_compile"] is False


def test_a_step_xla_cannot_compile_falls_back(capsys):
    from tf_rnn import models

    model = models.ElmanModel(5, 4, init="glorot")

    def loss_fn(outputs, targets):  # numpy_function has no XLA kernel
        zero = tf.numpy_function(lambda: np.float32(0.0), [], tf.float32)
        return steps.lm_loss(outputs, targets) + zero

    import keras

    train_step = steps.make_train_step(model, keras.optimizers.SGD(0.1), loss_fn=loss_fn,
                                       jit_compile=True)
    x = np.zeros((2, 3), np.int32)
    metrics, _ = train_step(x, x, model.zero_state(2))
    assert bool(metrics["finite"]) and not train_step.uses_xla()
    assert "XLA could not compile the train step" in capsys.readouterr().err
    train_step(x, x, model.zero_state(2))  # and it goes on without XLA


# 6. Offline text8 ---------------------------------------------------------------------

def test_offline_text8_says_what_to_do(tmp_path):
    with pytest.raises(errors.DataError) as info:
        text8.download_text8(tmp_path, url="http://127.0.0.1:9/text8.zip", progress=False)
    message = str(info.value)
    assert "--data FILE" in message and str(tmp_path / "text8.zip") in message
    assert "TF_RNN_CACHE" in message and "--cache-dir" in message


# 7. run.json ---------------------------------------------------------------------------

@pytest.mark.slow
def test_run_json_is_absolute_and_eval_works_from_elsewhere(capsys, tmp_path, corpus,
                                                            monkeypatch):
    rel = os.path.relpath(corpus, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--data", rel, "--workdir", "run", "--steps", "3",
                     *TINY]) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["data"] == str(corpus) and info["sha256"] == text8.file_sha256(corpus)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    code, out, err = run(capsys, "eval", "--workdir", str(tmp_path / "run"))
    assert code == 0, err
    Workdir(tmp_path / "run").save_run_info({"data": str(tmp_path / "gone.txt")})
    line = error_line(capsys, "eval", "--workdir", str(tmp_path / "run"))
    assert "gone.txt" in line and "run.json" in line and "--data FILE" in line


# 8. Values that are accepted but should not be ----------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["--temperature", "nan"], "`temperature`"),
    (["--temperature", "inf"], "`temperature`"),
    (["--top-k", "-3"], "`top_k`"),
    (["--length", "0"], "`length`"),
])
def test_sample_rejects_values_it_would_misread(capsys, trained, argv, fragment):
    for source in (["--workdir", str(trained)], ["--export", str(trained / "export")]):
        assert fragment in error_line(capsys, "sample", *source, *argv)


def test_length_zero_with_a_prime_returns_the_prime(capsys, trained):
    code, out, _ = run(capsys, "sample", "--workdir", str(trained), "--prime", "the",
                       "--length", "0")
    assert code == 0 and json.loads(out)["text"] == "the"


@pytest.mark.slow
def test_fewer_steps_than_the_run_has_changes_nothing(capsys, tmp_path, corpus, trained):
    workdir = pathlib.Path(shutil.copytree(trained, tmp_path / "run"))  # at step 20
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    capsys.readouterr()
    line = error_line(capsys, "train", "--data", str(corpus), "--workdir", str(workdir),
                      "--steps", "5", *TINY, "--set", "learning_rate=1")
    assert "already at step 20" in line and "nothing was changed" in line
    code, out, _ = run(capsys, "train", "--data", str(corpus), "--workdir", str(workdir),
                       "--steps", "20", *TINY)  # a finished run again: its figures only
    assert code == 0 and json.loads(out.splitlines()[-1])["step"] == 20
    after = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    assert after == before


# 9. One seed, one text -----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("prime", ["the ", ""])
def test_workdir_and_export_samplers_agree(capsys, trained, prime):
    for seed in (1, 7):
        texts = []
        for source in (["--workdir", str(trained)], ["--export", str(trained / "export")]):
            code, out, err = run(capsys, "sample", *source, "--prime", prime, "--length",
                                 "80", "--seed", str(seed), "--num-streams", "3")
            assert code == 0, err
            texts.append(json.loads(out)["texts"])
        assert texts[0] == texts[1]
        assert len(set(texts[0])) > 1  # the streams differ from each other


def test_sampler_random_numbers_are_the_same_with_and_without_xla():
    from tf_rnn.base import draws  # the sampler's draws (and the dropout masks')

    seed = tf.constant([12345, 6])
    plain = tf.function(draws.uniform)(seed, tf.constant([1000])).numpy()
    xla = tf.function(draws.uniform, jit_compile=True)(seed, tf.constant([1000])).numpy()
    np.testing.assert_array_equal(plain, xla)
    assert 0 <= plain.min() and plain.max() < 1 and abs(plain.mean() - 0.5) < 0.05


def test_sample_exports_agree_in_the_library_too(trained):
    from tf_rnn.engine import sampling
    from tf_rnn.run import reading

    model, vocab, _ = reading.load_model(trained)
    mine = sampling.sample(model, vocab, "", 50, temperature=0.8, top_k=5, seed=3,
                           num_streams=2)
    theirs = export.sample_from_export(trained / "export", "", 50, 0.8, 5, 3, 2)
    assert mine == theirs


# 10. The experiments' shared flags ----------------------------------------------------

@pytest.mark.slow
def test_toy_experiments_take_set_jit_compile_and_a_workdir_per_settings(
        tmp_path, monkeypatch, capsys):
    from experiments import hello

    monkeypatch.chdir(tmp_path)
    base = ["--seeds", "2", "--steps", "20", "--no-progress"]
    assert hello.main([*base, "--set", "jit_compile=false"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert hello.main([*base, "--text", "hi ho"]) == 0
    out, err = capsys.readouterr()
    second = json.loads(out.splitlines()[-1])
    assert first["workdir"] != second["workdir"]  # no run overwrites the other's
    assert first["workdir"].startswith("runs/hello/")
    for result in (first, second):
        assert (tmp_path / result["workdir"] / "model.keras").is_file()
    assert "hello step 20/20: loss" in err  # --no-progress: the loss lines remain
    assert hello.main([*base, "--set", "batch_size=3"]) == 2
    assert "accepts --set jit_compile only" in capsys.readouterr().err
