"""What the training diagnostics cost: chars/s with them at an interval against without.

Two ways, one JSON line each, then a summary line:
* "interleaved": the same compiled train step of a preset, run in alternating bursts
  without diagnostics and with one `tf_rnn.inspect.diagnostics` measurement (plus its
  TensorBoard summaries, written and flushed) every `--every` steps; the median
  chars/s of each over the bursts. On a busy machine this carries the noise of the
  machine, so also:
* "amortised": the mean time of one measurement and of one train step, each timed
  alone; overhead = measurement / (every x step), the share of time the diagnostics
  take at that interval.

    python -m experiments.diag_benchmark --data PATH [--preset text8_arch1] [--every 1000]
                                         [--seconds 90] [--rounds 3]
"""

import statistics
import sys
import tempfile
import time

from tf_rnn.base import jsonl
from tf_rnn.cli import arguments


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.diag_benchmark",
                                 description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="corpus (UTF-8 text)")
    p.add_argument("--preset", default="text8_arch1")
    p.add_argument("--every", type=int, default=0,
                   help="steps between measurements (default: the preset's eval_every, "
                   "the default diag_every)")
    p.add_argument("--seconds", type=float, default=90.0, help="total of all bursts")
    p.add_argument("--rounds", type=int, default=3, help="bursts of each variant")
    p.add_argument("--chunk", type=int, default=50, help="train steps per timed call")
    return p.parse_args(argv)


def run(args):
    import tensorflow as tf

    from tf_rnn import data as data_lib, models
    from tf_rnn.base import config as config_lib
    from tf_rnn.engine import steps, summaries
    from tf_rnn.inspect import diagnostics

    config = config_lib.get_preset(args.preset)
    every = args.every or config.eval_every
    corpus = data_lib.load_corpus(args.data, vocab=config.vocab, unknown="space",
                                  progress=False)
    model = models.build_model(config, corpus.vocab.size)
    optimizer = steps.make_optimizer(config)
    train_step = steps.make_train_step(model, optimizer, config.clip_norm, config.clip_value,
                                       jit_compile=config.jit_compile)
    hook = diagnostics.TrainingDiagnostics(config.replace(diag_every=every), model)
    cursors = data_lib.BatchCursors(corpus.train, config.batch_size, config.num_unrollings)
    writer = tf.summary.create_file_writer(tempfile.mkdtemp(prefix="diag_benchmark."))
    pending = summaries.PendingSummaries()
    box = {"state": model.zero_state(config.batch_size), "step": 0}
    chars = config.batch_size * config.num_unrollings

    def steps_with(diag):
        for _ in range(args.chunk):
            window = cursors.next()
            box["step"] += 1
            figures = hook.measure(box["step"], -1, window, box["state"]) if diag else None
            _, box["state"] = train_step(window[:, :-1], window[:, 1:], box["state"])
            if figures is not None:
                hook.write(pending, figures, box["step"])
                pending.write(writer)
        return args.chunk * chars

    tasks = {"diag_off": lambda: steps_with(False), "diag_on": lambda: steps_with(True)}
    for fn in tasks.values():
        fn()  # warm-up: tracing
    hook.measure(every, -1, cursors.next(), box["state"])  # traces the measurement
    rates = {name: [] for name in tasks}
    for _ in range(args.rounds):
        for name, fn in tasks.items():
            units, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds / args.rounds / 2:
                units += fn()
            rates[name].append(units / (time.perf_counter() - start))
    off, on = (statistics.median(rates[k]) for k in ("diag_off", "diag_on"))
    rows = [{"row": "interleaved", "preset": args.preset, "every": every,
             "chars_per_sec_off": off, "chars_per_sec_on": on,
             "loss_pct": 100 * (off - on) / off, "bursts": rates}]

    window, repeats = cursors.next(), 5
    start = time.perf_counter()
    for _ in range(repeats):
        hook.write(pending, hook.measure(every, -1, window, box["state"]), every)
        pending.write(writer)
    diag_sec = (time.perf_counter() - start) / repeats
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 5:
        n += steps_with(False) // chars
    step_sec = (time.perf_counter() - start) / n
    rows.append({"row": "amortised", "preset": args.preset, "every": every,
                 "diag_ms": 1e3 * diag_sec, "step_ms": 1e3 * step_sec,
                 "overhead_pct": 100 * diag_sec / (every * step_sec)})
    for row in rows:
        print(jsonl.dumps(row))
    return {"preset": args.preset, "every": every, "loss_pct_interleaved":
            rows[0]["loss_pct"], "overhead_pct_amortised": rows[1]["overhead_pct"]}


def main(argv=None):
    from tf_rnn import cli

    return cli.run_and_report(run, parse_args(argv), prog="experiments.diag_benchmark")


if __name__ == "__main__":
    sys.exit(main())
