"""`tf-rnn --help` answers: defaults, the presets, every --set key, --version (issue 18, 9)."""

import dataclasses
import os
import re
import subprocess
import sys

import pytest

import tf_rnn
from support import ROOT, subprocess_env
from tf_rnn import cli
from tf_rnn.base import config


def _help(*argv, capsys):
    """What `tf-rnn ARGV --help` prints."""
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_options_show_their_defaults(capsys):
    assert re.search(r"--length LENGTH\s+characters to generate \(default: 200\)",
                     _help("sample", capsys=capsys))
    assert "all: the whole corpus as one text (default: valid)" in _help("eval", capsys=capsys)
    assert re.search(r"validation windows measured \(default: 4\)",
                     _help("diagnose", capsys=capsys))
    # Nothing to say is not said: no "(default: None)" / "(default: False)".
    for command in ("train", "eval", "sample", "export", "diagnose"):
        text = _help(command, capsys=capsys)
        assert "(default: None)" not in text and "(default: False)" not in text, command


def test_train_help_lists_every_preset_and_every_config_field(capsys):
    text = _help("train", capsys=capsys)
    flat = " ".join(text.split())  # the epilog wraps long descriptions
    for name in config.PRESETS:
        assert re.search(rf"^  {name} ", text, re.M), name
    assert "model=arch2 num_nodes=50" in flat  # what text8_arch2 sets
    for field in dataclasses.fields(config.Config):
        # One line per field: name, default, then its description from config.py.
        assert re.search(rf"^  {field.name} +{re.escape(str(field.default))} +\S", text,
                         re.M), field.name
        assert " ".join(field.metadata["help"].split()) in flat, field.name


def test_train_help_says_what_each_preset_is_for(capsys):
    """Each preset's purpose on its name's line, its fields below (issue 36, item 9)."""
    assert set(config.PRESET_PURPOSES) == set(config.PRESETS)
    text = _help("train", capsys=capsys)
    for name, purpose in config.PRESET_PURPOSES.items():
        assert 0 < len(purpose) <= config.PURPOSE_WIDTH, name
        assert re.search(rf"^  {name} +{re.escape(purpose)}$", text, re.M), name


def test_every_config_field_has_one_short_description():
    for field in dataclasses.fields(config.Config):
        help = field.metadata.get("help", "")
        assert help and "\n" not in help and len(help) <= 100, field.name


@pytest.mark.parametrize("command", ["train", "eval", "sample", "export", "diagnose"])
def test_workdir_has_help(command, capsys):
    assert re.search(r"^  --workdir WORKDIR +\S", _help(command, capsys=capsys), re.M)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"tf-rnn {tf_rnn.__version__}\n"


def _python(*args):
    env = dict(os.environ)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_python_m_tf_rnn_version():
    done = _python("-m", "tf_rnn", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"tf-rnn {tf_rnn.__version__}\n"


def test_building_the_parser_does_not_import_tensorflow():
    """`--help` and `--version` answer at once: TensorFlow loads only when a command runs."""
    done = _python("-c", "import sys; from tf_rnn import cli; cli.build_parser()."
                   "format_help(); print(sorted({m.split('.')[0] for m in sys.modules} "
                   "& {'tensorflow', 'keras'}))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# Argument errors: one line (issue 36, item 2) ------------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["eval", "--workdir", "runs/a", "--split", "tset"], "invalid choice: 'tset'"),
    (["trian"], "invalid choice: 'trian'"),
    ([], "the following arguments are required: command"),
    (["train", "--workdir", "w", "--steps", "many"], "invalid int value: 'many'"),
    (["sample", "--workdir", "w", "--export", "e"], "not allowed with argument"),
    (["score", "--workdir", "w"], "one of the arguments --text --file is required"),
    (["inspect", "--workdir", "w", "--file", "f"], "required: --out"),
    (["export", "--workdir", "w", "--bogus"], "unrecognized arguments: --bogus"),
    (["diagnose", "--windows", "2"], "required: --workdir"),
])
def test_an_argument_error_is_one_line_naming_the_help(argv, fragment, capsys):
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args(argv)
    assert done.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tf-rnn: error: ") and fragment in lines[0]
    command = argv[0] if argv and argv[0] in cli.COMMANDS else None
    assert lines[0].endswith(f"see tf-rnn {command} --help" if command else "see tf-rnn --help")


def _experiment_modules():
    return sorted(p.stem for p in (ROOT / "experiments").glob("*.py")
                  if not p.stem.startswith("_"))


def test_every_experiment_says_an_argument_error_in_one_line():
    """Each runnable experiment module, run as a user runs it, a bad flag: one line on
    stderr (no usage block, no TensorFlow log line before it), exit 2."""
    names = _experiment_modules()
    assert len(names) >= 15
    procs = {name: subprocess.Popen([sys.executable, "-m", f"experiments.{name}",
                                     "--no-such-flag"], cwd=ROOT, env=subprocess_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in names}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, err)
        assert out == "" and len(err.splitlines()) == 1, (name, err)
        prog = f"python -m experiments.{name}"
        assert err.startswith(f"{prog}: error: "), (name, err)
        assert err.rstrip().endswith(f"see {prog} --help"), (name, err)


# Output paths: their directory must exist (issue 36, item 3) -----------------------------

_OUTPUTS = [
    ("tf_rnn.cli", ["sample", "--workdir", "w", "--out", "{out}"]),
    ("tf_rnn.cli", ["inspect", "--workdir", "w", "--file", "f", "--out", "{out}"]),
    ("tf_rnn.cli", ["export", "--workdir", "w", "--out", "{out}"]),
    ("tf_rnn.cli", ["diagnose", "--workdir", "w", "--plot", "{out}"]),
    ("experiments.text8_arch1", ["--plot", "{out}"]),
    ("experiments.hello", ["--plot", "{out}"]),
    ("experiments.hello", ["--report", "{out}"]),
    ("experiments.xor_elman", ["--plot", "{out}"]),
    ("experiments.binary_addition", ["--plot", "{out}"]),
    ("experiments.init_diagnostics", ["--plot", "{out}"]),
    ("experiments.quality", ["--data", "c.txt", "--plot", "{out}"]),
]


@pytest.mark.parametrize("module, argv", _OUTPUTS)
def test_an_output_in_a_missing_directory_is_refused_before_any_work(module, argv, tmp_path,
                                                                     capsys):
    import importlib

    missing = tmp_path / "no" / "such"
    out = missing / "x.out"
    with pytest.raises(SystemExit) as done:
        importlib.import_module(module).main([a.format(out=out) for a in argv])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error: argument --" in err, err
    assert f"the directory {str(missing)!r} does not exist" in err
    assert not (tmp_path / "no").exists()  # nothing created for the user


def test_the_library_refuses_an_output_in_a_missing_directory(tmp_path):
    from tf_rnn.base import errors
    from tf_rnn.inspect import report
    from tf_rnn.serve import export

    missing = tmp_path / "no" / "such"
    for call in (lambda: export.export(tmp_path / "run", missing / "export"),
                 lambda: report.inspect(tmp_path / "run", tmp_path / "f.txt", missing / "r.html")):
        with pytest.raises(errors.ArgumentError) as info:
            call()
        assert f"the directory {str(missing)!r} does not exist" in str(info.value)
    assert not (tmp_path / "no").exists()
