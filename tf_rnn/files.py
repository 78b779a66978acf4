"""Files written whole: through a temporary file in the same directory and a rename.

A crash at any moment leaves either the old file or the new one, never a mix. The new
file gets the mode any other file of the process gets (0666 less the umask), not the
owner-only mode of the temporary file: a second user of a shared server or an NFS
directory reads a run's `config.json` as they read its checkpoints.
"""

import os
import pathlib
import tempfile


def umask_mode(mode=0o666):
    """`mode` as the process's umask leaves it: what `open(path, "w")` would create."""
    mask = os.umask(0)  # the only way to read the umask: set it, then put it back
    os.umask(mask)
    return mode & ~mask


def atomic_write(path, data: bytes):
    """Writes `data` to `path` atomically (fsync, then rename), with the umask's mode.

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
