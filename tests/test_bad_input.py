"""Bad input through the `tf-rnn` CLI: each case gets exit code 2 and one line
`tf-rnn: error: ...` on stderr (no traceback), and leaves what was saved untouched.

The cases are the error table of docs/troubleshooting.md."""

import json
import shutil
import zipfile

import pytest

from support import tiny, words
from tf_rnn import cli
from tf_rnn.base import config as config_lib
from tf_rnn.data import vocab as vocab_lib
from tf_rnn.train import training

TINY = tiny()


def snapshot(path):
    """Every file under `path` with its bytes (empty if `path` does not exist)."""
    if not path.exists():
        return {}
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def fails(capsys, argv, *fragments):
    """Runs the CLI; asserts exit 2 and one error line holding `fragments`; returns it."""
    code = cli.main(list(argv))
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("tf-rnn: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory, files):
    """A trained text8-alphabet run (20 steps, checkpoints 0, 10, 20)."""
    workdir = tmp_path_factory.mktemp("runs") / "text8"
    assert cli.main(["train", "--data", str(files / "corpus.txt"), "--workdir", str(workdir),
                     "--steps", "20", *TINY]) == 0
    return workdir


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, files):
    """A trained `vocab=corpus` run."""
    workdir = tmp_path_factory.mktemp("runs") / "corpus"
    assert cli.main(["train", "--data", str(files / "corpus.txt"), "--workdir", str(workdir),
                     "--steps", "10", "--set", "vocab=corpus", *TINY]) == 0
    return workdir


# (case, data file or None, extra arguments, fragments of the message). Each is tried on a
# new work directory (which must not appear) and on the trained run (which must not change).
TRAIN_CASES = [
    ("missing data path", "missing.txt", [], ["missing.txt' does not exist (--data takes a "
                                              "file, or the name of a corpus"]),
    ("empty file", "empty.txt", [], ["Text file '", "empty.txt' is empty."]),
    ("non-UTF-8 file", "latin1.txt", [], ["is not valid UTF-8: byte 0xe9 at byte offset 7 ("]),
    ("zip with no member", "none.zip", [], ["none.zip' contains no file."]),
    ("zip with several members", "two.zip", [],
     ["two.zip' holds 2 files, expected exactly one: 'a.txt', 'b.txt'."]),
    ("corpus shorter than a window", "short.txt", [],
     ["The training split (90%) of ", "is too short. A corpus of ",
      "4 x 11 = 44 characters. Use a", "--set batch_size"]),
    ("unknown preset", "corpus.txt", ["--preset", "text9"],
     ["Unknown preset 'text9'; available presets: ['charrnn_adagrad'"]),
    ("--set unknown key", "corpus.txt", ["--set", "batchsize=4"],
     ["Unknown config key 'batchsize'; valid keys: ["]),
    ("--set without =", "corpus.txt", ["--set", "batch_size"],
     ["Expected --set KEY=VALUE, got 'batch_size'"]),
    ("--set wrong type", "corpus.txt", ["--set", "batch_size=four"],
     ["`batch_size`, expected an integer, got 'four'"]),
    ("--set zero size", "corpus.txt", ["--set", "batch_size=0"],
     ["`batch_size`, expected a positive integer, got 0"]),
    ("--set negative size", "corpus.txt", ["--set", "num_nodes=-3"],
     ["`num_nodes`, expected a positive integer, got -3"]),
    ("--set negative learning rate", "corpus.txt", ["--set", "learning_rate=-0.1"],
     ["`learning_rate`, expected a positive number, got -0.1"]),
    ("--set bool", "corpus.txt", ["--set", "deterministic=maybe"],
     ["`deterministic`, expected true/false, got 'maybe'"]),
    ("--steps 0", "corpus.txt", ["--steps", "0"],
     ["`steps`, expected a positive integer, got 0"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case,name,extra,fragments", TRAIN_CASES,
                         ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input(tmp_path, capsys, files, run, case, name, extra, fragments):
    new = tmp_path / "new"
    fails(capsys, ["train", "--data", str(files / name), "--workdir", str(new), *TINY,
                   *extra], *fragments)
    assert not new.exists()
    before = snapshot(run)  # resuming on it (allowed to change corpus): the file's error
    fails(capsys, ["train", "--data", str(files / name), "--workdir", str(run),
                   "--steps", "40", "--no-progress", "--allow-new-corpus", *extra],
          *fragments)
    assert snapshot(run) == before


@pytest.mark.slow
def test_unknown_characters_name_the_fix_and_the_flag_maps_them(tmp_path, capsys, files,
                                                               run):
    capitals = str(files / "capitals.txt")
    message = fails(capsys, ["train", "--data", capitals, "--workdir", str(tmp_path / "w"),
                             *TINY],
                    "capitals.txt has ", "character(s) outside the text8 alphabet",
                    "'.', 'C' (first at character ", "--set unknown=space",
                    "--set vocab=corpus", "--set normalize=true")
    first = int(message.split("first at character ")[1].split(")")[0])
    assert (files / "capitals.txt").read_text()[first] in ".C"
    # Resuming the text8 run with this text (allowed to change corpus): the run's
    # vocabulary is still fixed.
    before = snapshot(run)
    fails(capsys, ["train", "--data", capitals, "--workdir", str(run), "--steps", "40",
                   "--no-progress", "--allow-new-corpus"], "outside the vocabulary of the run in",
          "--set unknown=space")
    assert snapshot(run) == before
    # The documented mapping: each unknown character reads as a space.
    code = cli.main(["train", "--data", capitals, "--workdir", str(tmp_path / "w"),
                     "--steps", "2", "--set", "unknown=space", *TINY])
    _, err = capsys.readouterr()
    assert code == 0, err


@pytest.mark.parametrize("flags,fragment", [
    (["--preset", "text8_arch2"], "model: saved 'arch1', asked 'arch2'"),
    (["--set", "batch_size=8"], "batch_size: saved 4, asked 8"),
    (["--set", "num_nodes=32"], "num_nodes: saved 8, asked 32"),
    (["--set", "optimizer=adam"], "optimizer: saved 'adadelta', asked 'adam'"),
    (["--set", "vocab=corpus"], "vocab: saved 'text8', asked 'corpus'"),
])
def test_workdir_config_conflict(capsys, files, run, flags, fragment):
    before = snapshot(run)
    fails(capsys, ["train", "--data", str(files / "corpus.txt"), "--workdir", str(run),
                   "--steps", "40", "--no-progress", *flags],
          "holds a run whose settings conflict with this command", fragment,
          "Use another --workdir")
    assert snapshot(run) == before


@pytest.mark.slow
@pytest.mark.parametrize("name,fragment", [
    ("zebra.txt", "the corpus has 2 occurrence(s) of 2 character(s) outside it: 'b', 'z'"),
    ("no_y.txt", "the corpus lacks 'y'"),
])
def test_workdir_vocabulary_conflict(capsys, files, corpus_run, name, fragment):
    before = snapshot(corpus_run)
    fails(capsys, ["train", "--data", str(files / name), "--workdir", str(corpus_run),
                   "--steps", "40", "--no-progress", "--allow-new-corpus"],
          f"The characters of {files / name} differ from the vocabulary of the run in",
          "(vocab.json)", fragment, "use the corpus it was trained on, or another --workdir")
    assert snapshot(corpus_run) == before


def test_eval_and_sample_without_a_checkpoint(tmp_path, capsys, run):
    nothing = tmp_path / "nothing"
    for command in ("eval", "sample"):
        fails(capsys, [command, "--workdir", str(nothing)], "config.json is missing",
              "train first")
    assert not nothing.exists()
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    for name in ("config.json", "vocab.json"):
        shutil.copy(run / name, untrained / name)
    for command in ("eval", "sample"):
        fails(capsys, [command, "--workdir", str(untrained)], "No checkpoint in",
              "train first")


def test_eval_with_a_bad_corpus_changes_nothing(capsys, files, run):
    before = snapshot(run)
    fails(capsys, ["eval", "--workdir", str(run), "--data", str(files / "empty.txt")],
          "empty.txt' is empty.")
    assert snapshot(run) == before


def test_prime_with_unknown_characters(capsys, run):
    before = snapshot(run)
    fails(capsys, ["sample", "--workdir", str(run), "--prime", "The cat!"],
          "--prime 'The cat!' has character(s) outside the model's vocabulary",
          "'!', 'T'")
    assert snapshot(run) == before


@pytest.mark.parametrize("change,fragment", [
    ({"expected_size": 1}, "has the wrong size: expected 1 bytes, got more than 1"),
    ({"sha256": "0" * 64}, "has the wrong SHA-256: expected 0000"),
])
def test_text8_download_with_wrong_size_or_digest(tmp_path, capsys, change, fragment):
    served = tmp_path / "served.zip"
    with zipfile.ZipFile(served, "w") as zf:
        zf.writestr("text8", words(5000))
    verified = {"url": served.as_uri(), "expected_size": served.stat().st_size,
                "sha256": None, **change}
    config = config_lib.get_preset("text8_arch1")
    cache, workdir = tmp_path / "cache", tmp_path / "w"

    def train_on_text8(args):
        return training.train(config, workdir, None, cache_dir=cache,
                              download_kwargs=verified, progress=False)

    assert cli.run_and_report(train_on_text8, None) == 2
    _, err = capsys.readouterr()
    assert err.strip().splitlines() == [err.strip()] and fragment in err
    assert err.startswith(f"tf-rnn: error: The download from {served.as_uri()}")
    assert not (cache / "text8.zip").exists() and not workdir.exists()


def test_saved_files_are_json(run):
    """The vocabulary and the config are JSON (no pickle anywhere)."""
    assert json.loads((run / "vocab.json").read_text()) == {"chars": vocab_lib.TEXT8_ALPHABET}
    assert json.loads((run / "config.json").read_text())["batch_size"] == 4


def test_no_pickle_or_eval_in_the_package():
    """User data is read as JSON, text or TensorFlow checkpoints: never unpickled or
    evaluated as Python."""
    import ast
    import pathlib

    import tf_rnn

    package = pathlib.Path(tf_rnn.__file__).parent
    for path in [*package.glob("*.py"), *(package.parent / "experiments").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "marshal", "shelve", "dill"} & set(names), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec"), (path, node.lineno)
