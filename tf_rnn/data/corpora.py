"""The corpora a `--data` name stands for: `shakespeare`, shipped inside the package, and
`text8`, downloaded (`tf_rnn.data.text8`).

    --data shakespeare     Tiny Shakespeare, read from tf_rnn/data/shipped/ (works offline)
    --data text8           text8.zip, downloaded once into the cache
    --data notes.txt       any UTF-8 file (or a .gz / .zip holding one)

A path that exists always means that file: a name is looked up only when no such path
exists, so a file called `shakespeare` in the working directory is never shadowed, and
a name never stands in for a file that is missing (that stays an error, naming the file).
"""

import dataclasses
import os
import pathlib

from tf_rnn.base.errors import DataError

TEXT8 = "text8"  # the downloaded corpus: `data=None` everywhere below the CLI


@dataclasses.dataclass(frozen=True)
class Shipped:
    """A corpus shipped with the package."""

    filename: str  # in tf_rnn/data/shipped/, gzip-compressed UTF-8
    about: str  # one line for --help and the docs


SHIPPED = {
    "shakespeare": Shipped(
        "shakespeare.txt.gz",
        "Tiny Shakespeare (public domain, as char-rnn distributes it), 1.1 M characters"),
}

_FOLDER = pathlib.Path(__file__).resolve().parent / "shipped"


def shipped_path(name) -> pathlib.Path:
    """The file of the shipped corpus `name` (a key of SHIPPED)."""
    return _FOLDER / SHIPPED[name].filename


def named(data):
    """The corpus name `data` stands for ("text8" or a key of SHIPPED; a shipped
    corpus's own file counts as its name), or None when it is another path (or None
    itself: the caller's default)."""
    if data is None:
        return None
    path = os.path.abspath(os.path.expanduser(str(data)))
    for name in SHIPPED:
        if path == str(shipped_path(name)):
            return name
    if os.path.exists(path):
        return None
    return str(data) if str(data) in (TEXT8, *SHIPPED) else None


def resolve(data):
    """(the name `data` stands for or None, what to read: None for text8, a shipped
    corpus's file, else the path `data`).

    Raises:
      DataError: `data` is neither a path that exists nor a name (the names listed).
    """
    name = named(data)
    if data is not None and name is None and not os.path.exists(os.path.expanduser(str(data))):
        raise DataError(f"Text file {str(data)!r} does not exist (--data takes a file, or "
                        f"the name of a corpus: {', '.join(names())}).")
    if name == TEXT8:
        return name, None
    return name, shipped_path(name) if name else data


def names():
    """Every name `--data` takes."""
    return [*SHIPPED, TEXT8]


def describe():
    """The names, one clause each, for help texts and messages."""
    shipped = "; ".join(f"{name}: {s.about}, shipped with the package"
                        for name, s in SHIPPED.items())
    return f"{shipped}; {TEXT8}: Wikipedia, 100 M characters, downloaded once (31 MB)"
