"""A user's mistake and a bug end differently (tf_rnn.base.errors).

Everything a user can cause derives from `UserError` and prints one line, exit 2; any
other exception is a bug and keeps its traceback. The messages of the data layer follow
the two styles of the errors module's docstring: capitalised sentences ending with a
full stop.
"""

import re
import socket
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from support import subprocess_env

from tf_rnn import cli, data
from tf_rnn.base import config, errors
from tf_rnn.data import text8, textio
from tf_rnn.data.vocab import Vocabulary
from tf_rnn.engine import sampling
from tf_rnn.inspect import plots
from tf_rnn.run import directory, preemption, reading, resources
from tf_rnn.toys import tasks



def _raise(error):
    def command(args):
        raise error
    return command


# 1. What the CLI catches ---------------------------------------------------------------

USER_ERRORS = [errors.ConfigError, errors.DataError, errors.WorkdirError,
               errors.ArgumentError, errors.ExportError, plots.PlotError,
               preemption.WorkdirBusy, directory.WriteFailed, resources.ModelTooLarge]


@pytest.mark.parametrize("kind", USER_ERRORS, ids=lambda k: k.__name__)
def test_a_user_error_is_one_line_and_exit_2(capsys, kind):
    assert issubclass(kind, errors.UserError) and issubclass(kind, ValueError)
    assert cli.run_and_report(_raise(kind("Text file 'x' is empty.")), None) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "tf-rnn: error: Text file 'x' is empty.\n"


def test_an_os_error_is_the_users_machine(capsys):
    error = OSError(28, "No space left on device", "sample.txt")
    assert cli.run_and_report(_raise(error), None) == 2
    assert capsys.readouterr().err.splitlines() == [
        "tf-rnn: error: [Errno 28] No space left on device: 'sample.txt'"]


@pytest.mark.parametrize("bug", [ValueError("shapes (2, 3) and (4,) not aligned"),
                                 TypeError("unsupported operand"), KeyError("units")],
                         ids=lambda e: type(e).__name__)
def test_any_other_exception_is_a_bug_and_propagates(capsys, bug):
    with pytest.raises(type(bug)):
        cli.run_and_report(_raise(bug), None)
    assert "tf-rnn: error" not in capsys.readouterr().err


def test_a_library_bug_under_a_command_propagates_from_main(tmp_path, monkeypatch, capsys):
    def load_model(workdir):
        raise ValueError("operands could not be broadcast together")  # a bug, not the user

    monkeypatch.setattr(reading, "load_model", load_model)
    with pytest.raises(ValueError, match="broadcast"):
        cli.main(["sample", "--workdir", str(tmp_path)])
    assert "tf-rnn: error" not in capsys.readouterr().err


def test_a_library_user_error_under_a_command_is_one_line(tmp_path, monkeypatch, capsys):
    def load_model(workdir):
        raise errors.WorkdirError(f"No run in {str(workdir)!r}.")

    monkeypatch.setattr(reading, "load_model", load_model)
    assert cli.main(["sample", "--workdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"tf-rnn: error: No run in {str(tmp_path)!r}.\n"


BUG_DRIVER = """
import sys
from tf_rnn import cli
from tf_rnn.base import errors
from tf_rnn.run import reading

def load_model(workdir):
    raise {error}("operands could not be broadcast together")

reading.load_model = load_model
sys.exit(cli.main(["sample", "--workdir", sys.argv[1]]))
"""


@pytest.mark.slow  # two fresh processes, each importing TensorFlow
def test_a_bug_exits_1_with_its_traceback_a_user_error_2_in_one_line(tmp_path):
    env = subprocess_env()

    def run(error):
        return subprocess.run([sys.executable, "-c", BUG_DRIVER.format(error=error),
                               str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    bug = run("ValueError")
    assert bug.returncode == 1, bug.stderr[-3000:]
    assert "Traceback (most recent call last)" in bug.stderr
    assert "ValueError: operands could not be broadcast together" in bug.stderr
    assert "tf-rnn: error" not in bug.stderr
    user = run("errors.DataError")
    assert user.returncode == 2, user.stderr[-3000:]
    lines = [line for line in user.stderr.splitlines() if line.startswith("tf-rnn:")]
    assert lines == ["tf-rnn: error: operands could not be broadcast together"]
    assert "Traceback" not in user.stderr


# 2. What a user can cause is a UserError -----------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: config.get_preset("text9"),
    lambda: config.with_overrides(config.Config(), ["batch_size"]),
    lambda: config.with_overrides(config.Config(), ["batchsize=4"]),
    lambda: config.with_overrides(config.Config(), ["batch_size=four"]),
    lambda: config.with_overrides(config.Config(), ["batch_size=0"]),
    lambda: config.Config(model="arch2", combine="mul"),
    lambda: config.Config(model="arch2", init="irnn"),
    lambda: config.Config().replace(batchsize=4),
], ids=["preset", "no =", "unknown key", "type", "range", "ignored", "init", "replace"])
def test_config_errors_are_config_errors(call):
    with pytest.raises(errors.ConfigError):
        call()


@pytest.mark.parametrize("kwargs", [dict(temperature=float("nan")), dict(top_k=-3),
                                    dict(length=-1), dict(length=0, prime=""),
                                    dict(num_streams=0)], ids=str)
def test_sampling_settings_are_argument_errors(kwargs):
    settings = {"length": 5, "num_streams": 1, **kwargs}
    with pytest.raises(errors.ArgumentError, match="Received an invalid value for argument"):
        sampling.check_sample_arguments(**settings)


@pytest.mark.parametrize("call", [
    lambda: tasks.xor_task(np.zeros((1, 1))),
    lambda: tasks.next_symbol_task("a", Vocabulary("a")),
], ids=["xor bits", "next-symbol text"])
def test_toy_task_settings_are_argument_errors(call):
    with pytest.raises(errors.ArgumentError, match="Received an invalid value for argument"):
        call()


def test_experiment_flag_checks_are_argument_errors():
    from experiments import _run

    class Args:
        set, workdir = ["steps=3"], "w"

    with pytest.raises(errors.ArgumentError, match="accepts --set jit_compile only"):
        _run.toy_settings(Args(), "hello")


# 3. The messages of the data layer are sentences ---------------------------------------

SENTENCE = re.compile(r"[A-Z].*\.", re.DOTALL)  # capitalised, ending with a full stop
DOUBLED = re.compile(r"\.\.(?!\d)|\.[;:,]")  # a wrapped sentence's stop kept: "x.. y", "x.; y"


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


def _data_errors(tmp):
    """(case, call) of every DataError / ValueError the data layer raises."""
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "latin1.txt").write_bytes("café".encode("latin-1"))
    (tmp / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
    (tmp / "vocab_bad.json").write_text('{"chars": "aa"}', encoding="utf-8")
    (tmp / "vocab_nojson.json").write_text("{", encoding="utf-8")
    vocab, ids = Vocabulary("ab "), np.arange(50)
    cursors = data.BatchCursors(ids, 2, 3)
    with socket.socket() as closed:  # a bound port that does not listen: refused
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/text8.zip"
    served = _zip(tmp / "served.zip", {"text8": "a b c"})
    return {
        "missing": lambda: textio.load_text(tmp / "missing.txt"),
        "directory": lambda: textio.load_text(tmp),
        "empty": lambda: textio.load_text(tmp / "empty.txt"),
        "not utf-8": lambda: textio.load_text(tmp / "latin1.txt"),
        "zip, none": lambda: textio.load_text(_zip(tmp / "none.zip", {"d/": ""})),
        "zip, two": lambda: textio.load_text(_zip(tmp / "two.zip", {"a": "x", "b": "y"})),
        "zip, empty member": lambda: textio.load_text(_zip(tmp / "e.zip", {"a": ""})),
        "zip, corrupt": lambda: textio.load_text(tmp / "bad.zip"),
        "chars empty": lambda: Vocabulary(""),
        "chars repeat": lambda: Vocabulary("abca"),
        "chars type": lambda: Vocabulary(None),
        "encode unknown": lambda: vocab.encode("abc"),
        "encode no space": lambda: Vocabulary("ab").encode("abc", unknown="space"),
        "encode type": lambda: vocab.encode(b"ab"),
        "encode unknown=": lambda: vocab.encode("ab", unknown="drop"),
        "decode dtype": lambda: vocab.decode(np.zeros(2)),
        "decode shape": lambda: vocab.decode(np.zeros((2, 2), int)),
        "decode range": lambda: vocab.decode([0, 3]),
        "from_json": lambda: Vocabulary.from_json("[1]"),
        "from_json not json": lambda: Vocabulary.from_json("{"),
        "load missing": lambda: Vocabulary.load(tmp / "nothing.json"),
        "load corrupt": lambda: Vocabulary.load(tmp / "vocab_bad.json"),
        "load not json": lambda: Vocabulary.load(tmp / "vocab_nojson.json"),
        "split fractions": lambda: data.split_text("abcdef", (0.5, 0.5, 0.5)),
        "split empty part": lambda: data.split_text("ab", (0.9, 0.05, 0.05)),
        "corpus vocab": lambda: data.load_corpus(tmp / "latin1.txt", vocab="words"),
        "cursors short": lambda: data.BatchCursors(ids[:5], 2, 3),
        "cursors ids": lambda: data.BatchCursors(np.zeros((5, 5)), 2, 3),
        "cursors batch": lambda: data.BatchCursors(ids, 0, 3),
        "cursor shape": lambda: cursors.set_state([0]),
        "cursor range": lambda: cursors.set_state([0, 99]),
        "download refused": lambda: text8.download_text8(tmp / "c1", url=refused,
                                                         progress=False),
        "download size": lambda: text8.download_text8(tmp / "c2", url=served.as_uri(),
                                                      progress=False),
        "download digest": lambda: text8.download_text8(
            tmp / "c3", url=served.as_uri(), expected_size=served.stat().st_size,
            progress=False),
    }


def test_data_messages_are_capitalised_sentences(tmp_path):
    bad = {}
    for case, call in _data_errors(tmp_path).items():
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        if not SENTENCE.fullmatch(message) or DOUBLED.search(message):
            bad[case] = message
    assert bad == {}


def test_data_messages_that_name_a_file_quote_it(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(errors.DataError) as info:
        textio.load_text(path)
    assert str(info.value) == f"Text file {str(path)!r} is empty."
