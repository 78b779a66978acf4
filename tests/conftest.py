"""Fixtures shared by the test modules (a test module never imports another's)."""

import zipfile

import pytest

from corpora import words


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
