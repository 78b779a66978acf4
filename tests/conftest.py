"""Fixtures shared by the test modules (a test module never imports another's)."""

import collections
import zipfile

import pytest
from tensorflow.python.framework import config as tf_config

from support import XLA_EXACT, checkpoint_values, events, exact_argv, words, write_corpus
from tf_rnn import cli


def pytest_collection_modifyitems(config, items):
    """The modules with the most slow tests first. Under setup.cfg's `--dist loadfile` a
    worker takes a whole module at a time (its module fixtures are built once), in this
    order: the last modules handed out are quick ones, so the workers finish together."""
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: each module's own order kept


@pytest.fixture
def op_determinism_restored():
    """`deterministic=true` turns op determinism on process-wide; the tests after run
    without it (a module asks for this with `pytestmark`)."""
    was = tf_config.is_op_determinism_enabled()
    yield
    if not was:
        tf_config.disable_op_determinism()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """20 000 characters of `words` (a module may define its own `corpus` instead)."""
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


def _reference(tmp_path_factory, corpus, *extra):
    workdir = tmp_path_factory.mktemp("reference") / "run"
    was = tf_config.is_op_determinism_enabled()
    code = cli.main(exact_argv(corpus, workdir, *extra))
    if not was:
        tf_config.disable_op_determinism()
    assert code == 0
    return workdir, checkpoint_values(workdir), events(workdir)


@pytest.fixture(scope="session")
def exact_reference(tmp_path_factory, corpus):
    """The uninterrupted `exact_argv` run: (its workdir, final checkpoint_values, events)."""
    return _reference(tmp_path_factory, corpus)


@pytest.fixture(scope="session")
def xla_exact_reference(tmp_path_factory, corpus):
    """`exact_reference` compiled by XLA (`exact_argv(..., *XLA_EXACT)`)."""
    return _reference(tmp_path_factory, corpus, *XLA_EXACT)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A corpus, another one, and one file for each way a corpus can be bad."""
    d = tmp_path_factory.mktemp("files")
    (d / "corpus.txt").write_text(words(8000), encoding="utf-8")
    (d / "other.txt").write_text(words(8000, seed=1), encoding="utf-8")
    (d / "empty.txt").write_bytes(b"")
    (d / "latin1.txt").write_bytes("the café sat".encode("latin-1"))
    with zipfile.ZipFile(d / "none.zip", "w") as zf:
        zf.writestr("folder/", "")
    with zipfile.ZipFile(d / "two.zip", "w") as zf:
        zf.writestr("a.txt", "the cat")
        zf.writestr("b.txt", "sat on")
    (d / "short.txt").write_text("the cat sat on the mat", encoding="utf-8")
    (d / "capitals.txt").write_text(words(3000).replace("cat", "Cat."), encoding="utf-8")
    (d / "zebra.txt").write_text(words(8000) + " zebra", encoding="utf-8")
    (d / "no_y.txt").write_text(words(8000).replace("y", ""), encoding="utf-8")
    return d
