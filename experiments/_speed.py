"""What the speed rows of `experiments.benchmark` share: the bursts that measure them in
turns, the tasks they time (a matmul chain for the machine's peak, a train step on fresh
windows) and the dense training FLOPs per character of each model, for `peak_fraction`."""

import math
import statistics
import time

ALPHABET = 27  # ' ' + a-z, text8's alphabet


def arch1_flops_per_char(n, alphabet=ALPHABET):
    """Training FLOPs per character of Arch 1 as written: 3x the forward matmuls.

    The forward pass of a character multiplies x (A) by U (A, n), h (2n) by W (2n, n)
    and h by V (2n, A); backward costs twice the forward. This is the dense count the
    issue's "matmul-peak limit" uses; tf_rnn's table lookups skip part of it.
    """
    return 6 * (alphabet * n + 2 * n * n + 2 * n * alphabet)


def arch1_executed_flops_per_char(n, alphabet=ALPHABET):
    """FLOPs per character that tf_rnn's Arch 1 fast path executes: r·W_bottom and r·V_bottom.

    Per-character tables (A rows per window) are left out: under 2% at the seed shape.
    """
    return 6 * (n * n + n * alphabet)


def measure(tasks, seconds, rounds, log):
    """Runs `tasks` {name: fn() -> units done} in turns; returns {name: stats}.

    Each task is called once to warm up (tracing, compiling), then `rounds` times for a
    burst of seconds / rounds. Stats: best and median units per second over the bursts.
    """
    for name, fn in tasks.items():
        t0 = time.perf_counter()
        fn()
        log(f"  warm-up {name}: {time.perf_counter() - t0:.1f} s")
    rates = {name: [] for name in tasks}
    burst = seconds / rounds
    for _ in range(rounds):
        for name, fn in tasks.items():
            units, start = 0, time.perf_counter()
            while True:
                units += fn()
                elapsed = time.perf_counter() - start
                if elapsed >= burst:
                    break
            rates[name].append(units / elapsed)
    return {name: {"best": max(r), "median": statistics.median(r)} for name, r in rates.items()}


def matmul_peak_task(size=1024, chain=4):
    """fn() -> FLOPs done by `chain` dependent (size x size) float32 matmuls."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size]) / math.sqrt(size)  # keeps the chain's scale

    @tf.function
    def run(x):
        for _ in range(chain):
            x = tf.matmul(x, b)
        return x[0, 0]

    def fn():
        run(a).numpy()
        return 2 * size ** 3 * chain

    return fn


def train_task(train, ids, batch_size, num_unrollings):
    """fn() -> characters trained: one step on the next window of fresh cursors."""
    from tf_rnn import data

    cursors = data.BatchCursors(ids, batch_size, num_unrollings)

    def fn():
        train(cursors.next())
        return batch_size * num_unrollings

    return fn


def ratio(a, b):
    """a / b, or None where either is missing or zero (a row that did not run)."""
    return a / b if a and b else None
