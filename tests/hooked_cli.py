"""`tf-rnn ARGV` in a fresh process with a hook that stops it at a chosen moment: the
driver script shared by test_preemption and test_reliability (not a test module).

    subprocess.Popen([sys.executable, "-c", DRIVER, mode, str(k), marker, *argv])

The hook writes the file `marker` when it acts, so a test knows the moment has come.
"""

# `tf-rnn ARGV` with hooks, by mode:
#   pause K       - asks for window K+1 (steps 1..K done, step K+1 under way), writes
#                   MARKER and waits there until the file MARKER.go exists;
#   kill_save K   - SIGKILLs itself inside the save of checkpoint K (files written, the
#                   index not yet updated);
#   kill_events K - SIGKILLs itself inside the event write before checkpoint K: half the
#                   pending events are on disk;
#   limit BYTES   - a real RLIMIT_FSIZE of BYTES: a write past it fails with EFBIG.
DRIVER = r"""
import os, resource, signal, sys, time
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management
from tf_rnn import cli, data
from tf_rnn.engine import summaries

mode, k, marker, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
if mode == "pause":
    next_window, calls = data.BatchCursors.next, [0]
    def pausing_next(self):
        calls[0] += 1
        if calls[0] == k + 1:
            open(marker, "w").close()
            while not os.path.exists(marker + ".go"):
                time.sleep(0.05)
        return next_window(self)
    data.BatchCursors.next = pausing_next
elif mode == "kill_save":
    update = checkpoint_management.update_checkpoint_state_internal
    def dying_update(save_dir, model_checkpoint_path, *args, **kwargs):
        if os.path.basename(model_checkpoint_path) == f"ckpt-{k}":
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return update(save_dir, model_checkpoint_path, *args, **kwargs)
    checkpoint_management.update_checkpoint_state_internal = dying_update
elif mode == "kill_events":
    write = summaries.PendingSummaries.write
    def dying_write(self, writer):
        if self._items and max(item[3] for item in self._items) == k:
            half = self._items[len(self._items) // 2:]
            del self._items[len(self._items) // 2:]
            write(self, writer)
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return write(self, writer)
    summaries.PendingSummaries.write = dying_write
elif mode == "limit":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (k, k))
sys.exit(cli.main(argv))
"""
