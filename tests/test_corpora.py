"""The corpus shipped with the package and the names `--data` takes (tf_rnn.data.corpora):
the README's first command runs offline on it (issue 36, item 1)."""

import configparser
import gzip
import hashlib
import json
import os
import shlex
import subprocess
import sys

import pytest
from support import ROOT, subprocess_env

from tf_rnn import data
from tf_rnn.base import errors
from tf_rnn.data import corpora, textio
from tf_rnn.run import reading

# tinyshakespeare.txt as char-rnn distributes it (its SHA-256, 1 115 394 bytes).
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def test_the_shipped_corpus_is_tiny_shakespeare_compressed():
    path = corpora.shipped_path("shakespeare")
    raw = gzip.decompress(path.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == TINY_SHAKESPEARE_SHA256
    assert path.stat().st_size < 450_000  # about 0.4 MB in the package
    text = textio.load_text(path)
    assert len(text) == 1_115_394 and len(set(text)) == 65


def test_setup_ships_the_corpus_in_the_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = cfg["options.package_data"]["tf_rnn.data"].split()
    shipped = {p.relative_to(ROOT / "tf_rnn" / "data").as_posix()
               for pattern in patterns for p in (ROOT / "tf_rnn" / "data").glob(pattern)}
    assert {f"shipped/{s.filename}" for s in corpora.SHIPPED.values()} <= shipped


def test_a_name_reads_the_shipped_corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = data.load_corpus("shakespeare", vocab="corpus")
    assert corpus.source == "shakespeare (shipped)" and corpus.vocab.size == 65
    assert len(corpus.train) == round(0.9 * 1_115_394)
    normalised = data.load_corpus("shakespeare", normalize=True)  # text8's 27 characters
    assert normalised.vocab.size == 27


def test_a_path_that_exists_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shakespeare").write_text("my own play " * 50, encoding="utf-8")
    corpus = data.load_corpus("shakespeare", vocab="corpus")
    assert corpus.source == "shakespeare" and corpus.vocab.chars == " almnopwy"
    assert reading.corpus_record("shakespeare") == str(tmp_path / "shakespeare")


def test_text8_by_name_is_the_download_and_offline_names_the_shipped_corpus(tmp_path):
    with pytest.raises(errors.DataError) as info:
        data.load_corpus("text8", cache_dir=tmp_path, progress=False,
                         download_kwargs={"url": "http://127.0.0.1:9/text8.zip"})
    assert "Downloading http://127.0.0.1:9/text8.zip failed" in str(info.value)
    assert "--data shakespeare" in str(info.value)


def test_a_misspelt_name_is_an_error_naming_the_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errors.DataError, match="'shakspeare' does not exist .*the name of "
                                               "a corpus: shakespeare, text8"):
        data.load_corpus("shakspeare")


def test_run_json_records_a_name_not_the_packages_path():
    assert reading.corpus_record("shakespeare") == "shakespeare"
    assert reading.corpus_record(str(corpora.shipped_path("shakespeare"))) == "shakespeare"
    assert reading.corpus_record("text8") is None and reading.corpus_record(None) is None
    info = reading.run_info("shakespeare", None)
    assert info == {"data": "shakespeare",
                    "sha256": textio.file_sha256(corpora.shipped_path("shakespeare"))}


def test_gzip_text_is_read_and_a_bad_one_is_one_error(tmp_path):
    good = tmp_path / "notes.txt.gz"
    good.write_bytes(gzip.compress("the cat sat\n".encode()))
    assert textio.load_text(good) == "the cat sat\n"
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"the cat sat")[:-6])
    with pytest.raises(errors.DataError, match="is not a valid gzip file"):
        textio.load_text(bad)


def readme_first_command():
    """The README's first command, without its install step: argv."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    line = text.split("```bash\n", 1)[1].splitlines()[0].split("  #")[0]
    install, _, command = line.partition(" && ")
    assert install.startswith("pip install") and command.startswith("python -m ")
    return shlex.split(command)


def _offline_env(tmp_path):
    """No network (every proxy a closed port) and an empty text8 cache."""
    dead = "http://127.0.0.1:9"
    return subprocess_env(TF_RNN_CACHE=str(tmp_path / "cache"), http_proxy=dead,
                          https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead,
                          no_proxy="", NO_PROXY="")


@pytest.mark.slow
def test_the_readmes_first_command_trains_offline(tmp_path):
    argv = readme_first_command()
    assert "--steps" not in argv  # shortened below by a flag, nothing else
    done = subprocess.run([sys.executable, *argv[1:], "--steps", "12", "--no-progress"],
                          cwd=tmp_path, env=_offline_env(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["step"] == 12
    workdir = tmp_path / result["workdir"]
    assert json.loads((workdir / "run.json").read_text())["data"] in corpora.SHIPPED
    assert not os.path.exists(tmp_path / "cache" / "text8.zip")  # nothing downloaded


def test_a_run_recorded_on_a_shipped_corpus_reads_it_again(tmp_path, monkeypatch):
    """eval, sample and a resume without --data find the shipped file from its name,
    wherever they run (a file called `shakespeare` in the directory notwithstanding)."""
    from tf_rnn.run.directory import Workdir

    workdir = Workdir(tmp_path / "run").create()
    workdir.save_run_info(reading.run_info("shakespeare", None))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shakespeare").write_text("another text", encoding="utf-8")
    assert reading.run_data(workdir) == corpora.shipped_path("shakespeare")
