"""A served model under load: one SavedModel export called from many threads at once.

    python -m experiments.serve_benchmark [--export DIR] [--threads 16] [--requests 2000]
                                          [--seed 0] [--max-batch 64] [--verbose]

Without --export, a small Arch 1 run is trained on generated text and exported in a
temporary directory. The requests mix `generate` (seeded), `score` and `step`, with
batch sizes 1..max-batch. Each is first answered single-threaded (the reference), then
all of them again from `--threads` Python threads sharing the one loaded model: every
answer must equal its reference to the bit. Prints one JSON line per row (the load row,
then one per method): requests/s, p50/p99 latency in ms, errors and mismatches.
"""

import concurrent.futures
import json
import pathlib
import sys
import tempfile
import threading
import time

import numpy as np

from tf_rnn import cli
from tf_rnn.cli import arguments

METHODS = ("generate", "score", "step")


def make_requests(count, chars, state_size, seed=0, max_batch=64):
    """`count` (method, kwargs) requests, drawn with `seed`: batch sizes 1..max_batch."""
    rng = np.random.default_rng(seed)

    def text(low, high):
        return "".join(rng.choice(list(chars), size=int(rng.integers(low, high + 1))))

    requests = []
    for i in range(count):
        method, batch = METHODS[i % len(METHODS)], int(rng.integers(1, max_batch + 1))
        if method == "generate":
            kwargs = dict(prime=[text(0, 8) for _ in range(batch)],
                          length=int(rng.integers(1, 33)),
                          temperature=float(rng.choice([0.0, 0.8, 1.0])),
                          top_k=int(rng.choice([0, 5])), seed=int(rng.integers(0, 2**31)))
        elif method == "score":
            kwargs = dict(text=[text(1, 100) for _ in range(batch)])
        else:
            kwargs = dict(ids=rng.integers(0, len(chars), batch).astype(np.int32),
                          state=rng.normal(size=(batch, state_size)).astype(np.float32))
        requests.append((method, kwargs))
    return requests


def call(loaded, method, kwargs):
    """Answers one request with the loaded export; {output name: NumPy array}."""
    import tensorflow as tf

    if method == "generate":
        out = loaded.generate(tf.constant(kwargs["prime"]), tf.constant(kwargs["length"]),
                              tf.constant(kwargs["temperature"], tf.float32),
                              tf.constant(kwargs["top_k"]),
                              tf.constant(kwargs["seed"], tf.int64))
    elif method == "score":
        out = loaded.score(tf.constant(kwargs["text"]))
    else:
        out = loaded.step(tf.constant(kwargs["ids"]), tf.constant(kwargs["state"]))
    return {k: v.numpy() for k, v in out.items()}


def same(a, b):
    """Bitwise equality of two answers (NaN scores of 1-character texts included)."""
    def equal(x, y):
        if x.dtype == object:  # strings: compare the values, not the object pointers
            return x.shape == y.shape and x.tolist() == y.tolist()
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()

    return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)


def run_load(export_dir, threads=16, requests=2000, seed=0, max_batch=64):
    """Reference answers single-threaded, then the same requests from `threads` threads.

    Returns:
      [load row, one row per method]: dicts with "requests", "errors", "mismatches",
      "requests_per_sec", "p50_ms", "p99_ms" (and the first error, if any).
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(export_dir))
    chars = [c.decode("utf-8") for c in loaded.vocabulary().numpy()]
    state_size = int(loaded.zero_state(tf.constant(1))["state"].shape[1])
    todo = make_requests(requests, chars, state_size, seed, max_batch)
    reference = [call(loaded, m, kw) for m, kw in todo]  # single-threaded

    latency, answers, errors = [None] * len(todo), [None] * len(todo), []
    start = threading.Barrier(threads)

    def serve(indices):
        start.wait()  # all threads at once
        for i in indices:
            t0 = time.perf_counter()
            try:
                answers[i] = call(loaded, *todo[i])
            except Exception as err:  # noqa: BLE001 - counted and reported
                errors.append(f"{todo[i][0]}: {type(err).__name__}: {err}"[:300])
            latency[i] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(serve, range(t, len(todo), threads)) for t in range(threads)]:
            f.result()
    wall = time.perf_counter() - t0

    def row(kind, indices, seconds):
        ms = np.array([latency[i] for i in indices]) * 1e3
        return {"kind": kind, "threads": threads, "requests": len(indices),
                "batch_sizes": [min(_batch(todo[i]) for i in indices),
                                max(_batch(todo[i]) for i in indices)],
                "errors": sum(answers[i] is None for i in indices),
                "mismatches": sum(answers[i] is not None and not same(answers[i], reference[i])
                                  for i in indices),
                "requests_per_sec": round(len(indices) / seconds, 1),
                "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p99_ms": round(float(np.percentile(ms, 99)), 2)}

    rows = [row("serve_load", range(len(todo)), wall)]
    if errors:
        rows[0]["first_error"] = errors[0]
    for method in METHODS:
        rows.append(row(f"serve_load/{method}",
                        [i for i, (m, _) in enumerate(todo) if m == method], wall))
    return rows


def _batch(request):
    method, kwargs = request
    return len(kwargs["prime" if method == "generate" else
                      "text" if method == "score" else "ids"])


def _tiny_export(root):
    """Trains a small Arch 1 run on generated text and exports it; returns the export."""
    from tf_rnn.base import config as config_lib
    from tf_rnn.serve import export
    from tf_rnn.train import training

    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away"]
    data = pathlib.Path(root) / "corpus.txt"
    data.write_text(" ".join(rng.choice(words, size=4000)), encoding="utf-8")
    config = config_lib.get_preset("text8_arch1").replace(
        num_nodes=32, batch_size=8, num_unrollings=20, steps=50, eval_every=0,
        sample_every=0, log_every=50)
    training.train(config, pathlib.Path(root) / "run", str(data), progress=False)
    return export.export(pathlib.Path(root) / "run", pathlib.Path(root) / "export")[
        "export_dir"]


def parse_args(argv=None):
    parser = arguments.ArgumentParser(prog="python -m experiments.serve_benchmark",
                                      description=__doc__.splitlines()[0])
    parser.add_argument("--export", help="a SavedModel from `tf-rnn export` (default: a "
                        "small model trained and exported here)")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-batch", type=int, default=64)
    arguments.add_verbose_argument(parser)
    return parser.parse_args(argv)


def run(args):
    """Prints the rows, one JSON object a line, and returns them."""
    with tempfile.TemporaryDirectory() as root:
        export_dir = args.export or _tiny_export(root)
        rows = run_load(export_dir, args.threads, args.requests, args.seed, args.max_batch)
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None):
    """The exit status: 1 when an answer failed or differed from the reference."""
    rows = []

    def print_rows(args):
        rows.extend(run(args))  # None: the rows are already printed

    status = cli.run_and_report(print_rows, parse_args(argv),
                                prog="experiments.serve_benchmark")
    if status == 0 and (rows[0]["errors"] or rows[0]["mismatches"]):
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
