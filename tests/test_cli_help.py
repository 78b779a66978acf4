"""`tf-rnn --help` answers: defaults, the presets, every --set key, --version (issue 18, 9)."""

import dataclasses
import os
import re
import subprocess
import sys

import pytest

import tf_rnn
from tf_rnn import cli, config


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
