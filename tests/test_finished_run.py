"""A finished run, run again (issue 36): the same `tf-rnn train` once the run is at its
last step prints the figures the run recorded there, once, draws no progress bar for
the zero steps left, and changes nothing on disk; a signal meanwhile still stops it with
the signal's status."""

import contextlib
import io
import json
import os
import shutil
import signal
import threading

import pytest
from support import settings, write_corpus

from tf_rnn import cli
from tf_rnn.run import checkpoint

STEPS = 12


def train_argv(corpus, workdir):
    """The tiny run of STEPS steps with its progress bar on (the bar is under test)."""
    flags = []
    for setting in settings(eval_every=5, sample_every=5):
        flags += ["--set", setting]
    return ["train", "--data", str(corpus), "--workdir", str(workdir), "--steps",
            str(STEPS), *flags]


def snapshot(workdir):
    """Every file of a work directory but the lock: relative path -> bytes."""
    return {p.relative_to(workdir): p.read_bytes() for p in sorted(workdir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(workdir, corpus, the JSON result, stderr) of the tiny run trained to its end."""
    root = tmp_path_factory.mktemp("finished")
    corpus = write_corpus(root / "corpus.txt", 6000)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(train_argv(corpus, root / "run"))
    assert code == 0, err.getvalue()
    return root / "run", corpus, json.loads(out.getvalue().splitlines()[-1]), err.getvalue()


@pytest.fixture
def again(tmp_path, finished):
    """A copy of the finished run: (its workdir, its train argv, the first result)."""
    workdir = shutil.copytree(finished[0], tmp_path / "run")
    return workdir, train_argv(finished[1], workdir), finished[2]


@pytest.mark.slow
def test_run_again_prints_the_recorded_figures_once_and_changes_nothing(
        capsys, finished, again):
    workdir, argv, first = again
    assert f"{STEPS}/{STEPS}" in finished[3]  # the first run drew its bar
    assert all(first[k] is not None for k in ("loss", "train_bpc", "valid_bpc", "sample"))
    before = snapshot(workdir)
    assert any(p.parts[0] == "checkpoints" for p in before)
    assert any(p.parts[0] == "events" for p in before)

    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # the figures once
    result = json.loads(lines[0])
    assert result["step"] == STEPS and "null" not in json.dumps(
        {k: result[k] for k in ("loss", "train_bpc", "valid_bpc", "sample")}), result
    # The first run's figures, as its events recorded them (float32 scalars).
    for key in ("loss", "train_bpc", "valid_bpc"):
        assert result[key] == pytest.approx(first[key], rel=1e-6), key
    assert result["sample"] == first["sample"]
    assert f"already at step {STEPS}" in err and "Resumed" not in err, err
    assert "train:" not in err and f"{STEPS}/{STEPS}" not in err, err  # no bar at all
    assert snapshot(workdir) == before  # checkpoints and events byte-identical


@pytest.mark.slow
def test_a_signal_while_a_finished_run_reads_its_figures_exits_130(
        capsys, monkeypatch, again):
    """A real SIGINT to this process while the figures are read (in the main thread,
    where the training loop handles signals: pytest-xdist runs tests there)."""
    assert threading.current_thread() is threading.main_thread()
    workdir, argv, _ = again
    before = snapshot(workdir)
    read = checkpoint.recorded_figures

    def interrupted(events_dir, step):
        os.kill(os.getpid(), signal.SIGINT)
        return read(events_dir, step)

    monkeypatch.setattr(checkpoint, "recorded_figures", interrupted)
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 130, err
    assert not out  # no figures: the run was stopped
    assert [line for line in err.splitlines() if line.startswith("tf-rnn:")] == [
        f"tf-rnn: stopped by SIGINT at step {STEPS}: the run was already there, nothing "
        f"was changed. That is its last step: the same command prints its figures."], err
    assert snapshot(workdir) == before


def test_recorded_figures_are_those_of_the_step_asked(tmp_path):
    """Read back from event files as the loop writes them (`PendingSummaries`), one file
    per process; a step without them gives no key."""
    import tensorflow as tf

    from tf_rnn.engine import summaries

    for process, (step, loss, bpc, text) in enumerate([(5, 3.25, 4.5, "early"),
                                                       (12, 2.875, 4.125, "late")]):
        writer = tf.summary.create_file_writer(str(tmp_path / "events"),
                                               filename_suffix=f".{process}")
        pending = summaries.PendingSummaries()
        pending.scalar("train/loss", loss, step)
        pending.scalar("train/bpc", loss / 0.693, step)
        pending.scalar("valid/bpc", bpc, step)
        pending.text("samples/text", text, step)
        pending.write(writer)
        writer.close()
    events = tmp_path / "events"
    assert checkpoint.recorded_figures(events, 12) == {"loss": 2.875, "valid_bpc": 4.125,
                                                      "sample": "late"}
    assert checkpoint.recorded_figures(events, 5) == {"loss": 3.25, "valid_bpc": 4.5,
                                                     "sample": "early"}
    assert checkpoint.recorded_figures(events, 7) == {}
    assert checkpoint.recorded_figures(tmp_path / "absent", 12) == {}
    # A float32 comes back as its shortest decimal, not float32's binary expansion.
    pending, writer = summaries.PendingSummaries(), tf.summary.create_file_writer(
        str(tmp_path / "more"))
    pending.scalar("train/loss", 3.2799437046051025, 1)
    pending.write(writer)
    writer.close()
    assert checkpoint.recorded_figures(tmp_path / "more", 1) == {"loss": 3.2799437}
