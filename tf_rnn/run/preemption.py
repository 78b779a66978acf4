"""Runs that share a machine: one writer per work directory, and stopping on a signal.

`WorkdirLock` is an OS-level lock (`fcntl.flock`) on `WORKDIR/.lock`: a second writer
(`tf-rnn train`, `tf-rnn export --overwrite` into the run's export) is refused at once
with the pid of the process holding it, and the kernel drops the lock with its process,
so a SIGKILLed run never blocks the next one. The file itself holds nothing: the holder's
pid is read from /proc/locks (Linux), so taking the lock never rewrites a file.

`StopSignals` turns SIGTERM (a scheduler or a preemptible VM about to kill the process)
and SIGINT (Ctrl-C) into a request that the training loop honours between steps: it
writes a checkpoint at the current step, flushes its events and raises `Preempted`,
which the CLI turns into one line and the exit status 128 + signal (143, 130). One
that comes after the last step (its validation, sample or save) stops the run the same
way, after that step's checkpoint: a signal received is never dropped.
"""

import errno
import fcntl
import os
import pathlib
import signal
import threading

from tf_rnn.base.errors import WorkdirError

LOCK_NAME = ".lock"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class WorkdirBusy(WorkdirError):
    """Another live process holds the work directory's lock."""


class Preempted(Exception):
    """Training stopped on a signal after writing a checkpoint at the current step.

    Attributes:
      signum: the signal received; `exit_code` is 128 + signum (SIGTERM 143, SIGINT 130).
    """

    def __init__(self, signum, message):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def _lock_holder(path):
    """The pid holding a flock on `path` according to /proc/locks, or None."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks", encoding="ascii") as f:
            for line in f:
                fields = line.split()  # 1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF
                if "->" in fields:  # a waiter, not the holder
                    continue
                if len(fields) >= 6 and fields[1] == "FLOCK" and \
                        fields[5].rsplit(":", 1)[-1] == str(inode):
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


class WorkdirLock:
    """An exclusive, non-blocking `flock` on WORKDIR/.lock, held as a context manager.

    Args:
      path: the work directory (created if absent, removed again on release if the lock
        file is all it holds: a refused or failed first run leaves nothing behind).
      purpose: what the holder does, for the message of the refused process.

    Raises (on enter):
      WorkdirBusy: another process holds the lock; the message names its pid.
    """

    def __init__(self, path, purpose="training"):
        self.path = pathlib.Path(path)
        self.purpose = purpose
        self._fd = None
        self._created = False

    def __enter__(self):
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            pid = _lock_holder(lock_path)
            who = f"process {pid}" if pid is not None else "another process"
            raise WorkdirBusy(
                f"Work directory {str(self.path)!r} is in use by {who} (it holds "
                f"{lock_path.name}); refusing {self.purpose} alongside it. Wait for it to "
                f"finish, stop it (kill -TERM {pid if pid is not None else 'PID'}: it "
                f"writes a checkpoint and exits), or use another --workdir.") from None
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is None:
            return
        try:
            if self._created and os.listdir(self.path) == [LOCK_NAME]:
                os.unlink(self.path / LOCK_NAME)  # still locked: no one else can use it
                os.rmdir(self.path)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


class StopSignals:
    """Within the context, SIGTERM and SIGINT set `signum` instead of ending the process.

    The loop polls `signum` between steps and once more after the last (the run's
    figures). A second Ctrl-C raises KeyboardInterrupt at once (the last checkpoint is
    kept). Outside the main thread, where Python cannot install handlers, this does
    nothing. `signals` selects which to handle (under multi-worker training
    TensorFlow's PreemptionCheckpointHandler owns SIGTERM).
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signum = None
        self._signals = tuple(signals)
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self._signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


def signal_name(signum):
    return signal.Signals(signum).name


def stopped(signum, step, written, last):
    """The `Preempted` of a training run stopped by `signum` at `step`.

    Args:
      written: the checkpoint it wrote at `step`; None: a finished run, run again,
        which wrote nothing (its checkpoint is there already).
      last: `step` is the run's last: the same command then prints its figures.
    """
    what = (f"checkpoint {written} written, TensorBoard events flushed" if written else
            "the run was already there, nothing was changed")
    then = ("That is its last step: the same command prints its figures." if last else
            "Run the same command to resume.")
    return Preempted(signum, f"stopped by {signal_name(signum)} at step {step}: {what}. "
                             f"{then}")
