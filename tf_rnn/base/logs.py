"""Keeps TensorFlow's native (C++) log lines off the terminal of the CLI and experiments.

TensorFlow 2.21 logs through absl before anyone calls `absl::InitializeLog()`, so
`TF_CPP_MIN_LOG_LEVEL` no longer silences all of it: every process printed
`WARNING: All log messages before absl::InitializeLog() ...`, twice `I0000 ... oneDNN
custom operations are on`, and during training `E0000 ... oneDNN supports DT_INT32
only on platforms with AVX-512` (a note that oneDNN falls back to Eigen for one op, not
an error). Turning oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`) would silence the last two at
a cost in speed, so instead `native_logs_filtered()` points file descriptor 2 at a pipe
and forwards every line except those native log lines to the real stderr; Python's
own `sys.stderr` (progress bars, messages) is re-pointed straight at the real stderr,
so it is neither delayed nor filtered. Fatal (`F...`) lines are always forwarded.

`--verbose` on the commands, or `TF_RNN_VERBOSE=1`, turns the filter off.

`note(message)` is how every module tells the user something on stderr.
"""

import contextlib
import io
import os
import re
import sys
import threading

import tqdm

VERBOSE_ENV = "TF_RNN_VERBOSE"
# absl/TensorFlow native log line: severity, MMDD, time, thread id, file:line]
_LOG_LINE = re.compile(rb"^[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\]")
_DROPPED = (b"WARNING: All log messages before absl::InitializeLog() is called",
            b"To enable the following instructions:")  # 2nd line of cpu_feature_guard's


def note(message):
    """Writes `message`, one line for the user, to stderr.

    The one way the package tells a user something beside its output (a fallback taken,
    a checkpoint skipped, the training log): through tqdm, so that a progress bar on the
    terminal is redrawn below the line instead of being torn by it.
    """
    tqdm.tqdm.write(message, file=sys.stderr)


def verbose_requested(flag=False):
    """True when the user asked for TensorFlow's own logs (`--verbose` or the env var)."""
    return bool(flag) or os.environ.get(VERBOSE_ENV, "").strip().lower() in (
        "1", "true", "yes", "on")


def is_native_log_line(line: bytes) -> bool:
    """True for one of TensorFlow's native log lines that the filter drops."""
    return bool(_LOG_LINE.match(line)) or line.startswith(_DROPPED)


def _pump(read_fd, write_fd):
    """Forwards what arrives on `read_fd` to `write_fd`, line by line, minus native logs."""
    pending = b""
    with open(read_fd, "rb", buffering=0) as pipe:
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_log_line(line))
            if kept:
                os.write(write_fd, kept)
    if pending and not is_native_log_line(pending):
        os.write(write_fd, pending)


@contextlib.contextmanager
def native_logs_filtered(verbose=False):
    """Within the block, native log lines written to fd 2 are dropped (see the module).

    The entry points (the CLI, the experiments) run in this block. Within it
    `TF_CPP_MIN_LOG_LEVEL` is 2 (for a TensorFlow imported there), unless the user set
    it, and is taken back after: a process-wide setting, made here and never by
    importing tf_rnn.
    Does nothing when `verbose_requested(verbose)`; only the variable when fd 2 cannot be
    redirected.
    """
    if verbose_requested(verbose):
        yield
        return
    with _tensorflow_log_level("2"), _fd2_filtered():
        yield


@contextlib.contextmanager
def _tensorflow_log_level(level):
    """TF_CPP_MIN_LOG_LEVEL=`level` within the block unless the user set it; put back
    after it, so a library caller's process keeps its own settings."""
    ours = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    if ours:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = level
    try:
        yield
    finally:
        if ours:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


@contextlib.contextmanager
def _fd2_filtered():
    """fd 2 through the filter within the block (nothing when it cannot be redirected)."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, real), daemon=True,
                            name="tf_rnn-native-log-filter")
    pump.start()
    old_stderr = sys.stderr
    if _writes_to_fd2(old_stderr):  # Python's own lines go straight to the terminal
        sys.stderr = io.TextIOWrapper(
            open(real, "wb", buffering=0, closefd=False), encoding=old_stderr.encoding,
            errors="backslashreplace", line_buffering=True)  # whole lines: no mixing
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        finally:
            sys.stderr = old_stderr
            os.dup2(real, 2)  # closes the pipe's last write end: the pump sees EOF
            pump.join(timeout=5)
            os.close(real)


def _writes_to_fd2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
