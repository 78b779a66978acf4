"""Files written whole: through a temporary file in the same directory and a rename.

A crash at any moment leaves either the old file or the new one, never a mix. The new
file gets the mode any other file of the process gets (0666 less the umask), not the
owner-only mode of the temporary file: a second user of a shared server or an NFS
directory reads a run's `config.json` as they read its checkpoints.
"""

import os
import pathlib
import tempfile

from tf_rnn.base.errors import ArgumentError


def umask_mode(mode=0o666):
    """`mode` as the process's umask leaves it: what `open(path, "w")` would create."""
    mask = os.umask(0)  # the only way to read the umask: set it, then put it back
    os.umask(mask)
    return mode & ~mask


def missing_parent(path):
    """The directory that would hold `path`, if it does not exist; else None."""
    parent = pathlib.Path(path).expanduser().absolute().parent
    return None if parent.is_dir() else parent


def require_parent(path, option):
    """Checks an output path the user gave (`option`, e.g. "--out") before any work: its
    directory must exist. A typo in it should not leave directories nobody asked for.

    Raises:
      ArgumentError: naming the option, the path and the missing directory.
    """
    parent = missing_parent(path)
    if parent is not None:
        raise ArgumentError(f"{option} {str(path)!r}: {no_directory(parent)}")


def no_directory(parent):
    """The message's end for an output whose directory `parent` is missing."""
    return (f"the directory {str(parent)!r} does not exist (nothing was written; create "
            f"it first or choose another path).")


def atomic_write(path, data: bytes):
    """Writes `data` to `path` atomically (fsync, then rename), with the umask's mode.
    Creates the missing directories of the package's own files (a work directory's);
    a path the user gave is checked first (`require_parent`).

    Raises:
      OSError: the file could not be written; `path` is as it was, no temporary is left.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
