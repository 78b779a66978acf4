"""One work directory per run: its layout, and atomic writes of its JSON files.

    WORKDIR/config.json     the run's Config
    WORKDIR/vocab.json      the vocabulary (characters in id order)
    WORKDIR/run.json        where the data came from (path, or text8)
    WORKDIR/checkpoints/    tf.train.CheckpointManager files
    WORKDIR/events/         TensorBoard event files
"""

import json
import pathlib
import re
import shutil

from tf_rnn.base import config as config_lib, files
from tf_rnn.base.errors import WorkdirError
from tf_rnn.data.vocab import Vocabulary


class WriteFailed(WorkdirError):
    """A file of the run could not be written: a full disk, a file-size limit, ..."""


def _size(n):
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


def _reason(err):
    """'No space left on device', 'File too large', ... of an OSError or a TF OpError."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    line = (str(getattr(err, "message", err)).strip().splitlines() or [repr(err)])[0]
    line = re.sub(r"^\{\{[^}]*\}\}\s*|\s*\[Op:[^\]]*\]$", "", line)
    return line.rsplit("; ", 1)[-1]


def write_failed(what, path, err, needed=None, then=""):
    """The one-line `WriteFailed` for `err` raised while writing `what` at `path`:
    the reason, the space it needs (`needed` bytes) and the space free there."""
    where = pathlib.Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = f"{_size(shutil.disk_usage(where).free)} free there"
    except OSError:
        free = "free space unknown"
    need = f"needs about {_size(needed)}, " if needed is not None else ""
    return WriteFailed(f"Could not write {what} {str(path)!r}: {_reason(err)} ({need}"
                       f"{free}). {then}".strip())


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically (`tf_rnn.base.files.atomic_write`).

    Raises:
      WriteFailed: the file could not be written (the old one is kept).
    """
    path = pathlib.Path(path)
    try:
        files.atomic_write(path, text.encode("utf-8"))
    except OSError as err:
        raise write_failed(path.name, path, err, len(text.encode("utf-8")),
                           "The previous version of the file is kept.") from None


class Workdir:
    """Paths and saved metadata of one run's directory."""

    def __init__(self, path):
        path = path.path if isinstance(path, Workdir) else path
        self.path = pathlib.Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise WorkdirError(f"Work directory {str(self.path)!r} exists and is not a "
                               f"directory.")

    config_path = property(lambda self: self.path / "config.json")
    vocab_path = property(lambda self: self.path / "vocab.json")
    run_path = property(lambda self: self.path / "run.json")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    events_dir = property(lambda self: self.path / "events")

    def create(self):
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def has_checkpoint(self):
        return (self.checkpoint_dir / "checkpoint").is_file()

    # Config -------------------------------------------------------------------
    def load_config(self):
        """The saved Config; WorkdirError when there is none or it is unreadable."""
        if not self.config_path.is_file():
            raise WorkdirError(f"No run in {str(self.path)!r}: {self.config_path.name} is "
                               f"missing (train first with `tf-rnn train --workdir ...`).")
        try:
            values = json.loads(self.config_path.read_text(encoding="utf-8"))
            if not isinstance(values, dict):  # hand-edited into a list, a number, ...
                raise ValueError(f"expected a JSON object of config fields, got "
                                 f"{type(values).__name__}")
            return config_lib.Config.from_dict(values)
        except (ValueError, TypeError, OSError) as e:  # ConfigError, JSON's, ...
            raise WorkdirError(f"Cannot read {str(self.config_path)!r}: "
                               f"{str(e).rstrip('.')}.") from None

    def check_compatible(self, config):
        """Raises WorkdirError if `config` cannot continue the run saved here."""
        if not self.config_path.is_file():
            return
        saved = self.load_config()
        conflicts = [f"{name}: saved {getattr(saved, name)!r}, asked {getattr(config, name)!r}"
                     for name in config_lib.SHAPE_FIELDS
                     if getattr(saved, name) != getattr(config, name)]
        if conflicts and self.has_checkpoint():
            raise WorkdirError(
                f"Work directory {str(self.path)!r} holds a run whose settings conflict "
                f"with this command ({'; '.join(conflicts)}). Use another --workdir, or "
                f"the saved settings.")

    def save_config(self, config):
        atomic_write_text(self.config_path, config.to_json() + "\n")

    # Vocabulary ---------------------------------------------------------------
    def load_vocab(self):
        return Vocabulary.load(self.vocab_path) if self.vocab_path.is_file() else None

    def save_vocab(self, vocab):
        try:
            vocab.save(self.vocab_path)
        except OSError as err:
            raise write_failed(self.vocab_path.name, self.vocab_path, err,
                               len(vocab.to_json().encode("utf-8")),
                               "The previous version of the file is kept.") from None

    # Data source --------------------------------------------------------------
    def load_run_info(self):
        """The saved {"data": path or None}; WorkdirError when it is unreadable."""
        if not self.run_path.is_file():
            return {}
        try:
            info = json.loads(self.run_path.read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise ValueError(f"expected a JSON object, got {type(info).__name__}")
            if not isinstance(info.get("data"), (str, type(None))):
                raise ValueError(f"field \"data\" must be a path or null, got "
                                 f"{info['data']!r}")
            return info
        except (ValueError, OSError) as e:
            raise WorkdirError(f"Cannot read {str(self.run_path)!r}: "
                               f"{str(e).rstrip('.')}.") from None

    def save_run_info(self, info):
        atomic_write_text(self.run_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
