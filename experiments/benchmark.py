"""tf_rnn against its peers, in one process: training, evaluation, sampling, scaling.

    python -m experiments.benchmark [--quick] [--seconds S] [--sections train,indrnn,...]
                                    [--quality [--minutes M]]

Every compared row is measured in the same process, interleaved: the rows of a group
take turns in short bursts (`--rounds` per row) and each reports its best burst, so a
machine shared with other work slows all of them alike. Progress and a Markdown table
go to stderr; stdout gets one JSON line per row, `{"name", "chars_per_sec", ...}`, and
last a `{"summary": {...}}` line with the ratios of this run.

Rows: the float32 matmul peak of this machine (and the Arch 1 speed it would allow);
training at the seed shapes, tf_rnn (XLA, and the presets' default without it) against
Keras `SimpleRNN(relu)` and the seed's naive per-step graph; IndRNN at text8_indrnn's
shape (1 layer and the preset's 2) against Keras `SimpleRNN(512)` x 1 and x 2 (section
`indrnn`) and every other stacked preset against its Keras stack (`stacks`; both in
`experiments._stacks`; `gated`, only when asked: IndRNN against Keras LSTM and GRU stacks,
cuDNN's on a GPU); evaluation over a split; sampling of one and of 64 streams against
a Python loop over a compiled one-step function; Arch 1 training cost against state size
and unroll length. `--quality` adds
validation bits per character after equal wall-clock training (`experiments._quality`).
"""

import math
import sys

import numpy as np

from experiments._report import Report, peak_rss_tracker, round_figures
from experiments._run import tf_rnn_trainer
from experiments._speed import (ALPHABET, arch1_executed_flops_per_char, arch1_flops_per_char,
                                matmul_peak_task, measure, ratio, train_task)
from experiments._stacks import run_gated, run_indrnn, run_stacks
from tf_rnn import cli
from tf_rnn.cli import arguments
from tf_rnn.data import vocab as vocab_lib

# The parts of a run (`--sections`); the last three run only when named.
SECTIONS = ("train", "indrnn", "stacks", "eval", "sample", "scale", "bf16", "gated", "quality")
DEFAULT_SECTIONS = SECTIONS[:-3]
SPEED_CHARS = 1 << 20  # synthetic corpus of the speed rows: speed does not depend on text
# The targets, as ratios (or speeds) from one run: summary["targets_met"].
TARGETS = {"arch1_vs_keras": 2.5, "arch1_peak_fraction": 0.5, "arch2_vs_naive": 2.5,
           "arch1_sum_vs_keras": 2.0, "arch1_mul_vs_keras": 2.0,
           "sampling_vs_loop": 20.0, "sampling_64_streams_chars_per_sec": 500_000,
           "indrnn_vs_keras": 3.0}


def run_training(report, args, ids):
    """Arch 1 and Arch 2 training rows, each group interleaved with its baselines."""
    from experiments import _baselines

    B1, T1, n1 = 32, args.arch1_unroll, 100  # the Arch 1 seed shape: state 2n = 200
    report.log(f"Arch 1 training (batch {B1}, unroll {T1}, state {2 * n1}):")
    _, _, xla = tf_rnn_trainer("text8_arch1", num_unrollings=T1, jit_compile=True)
    _, _, default = tf_rnn_trainer("text8_arch1", num_unrollings=T1, jit_compile=False)
    keras_rnn = _baselines.KerasCharRNN(ALPHABET, 2 * n1, B1, T1)
    naive = _baselines.NaiveArch1(ALPHABET, n1, B1)
    tasks = {"peak": matmul_peak_task()}
    for name, trainer in (("tf_rnn", xla), ("tf_rnn_no_xla", default),
                          ("keras_simplernn", keras_rnn.train), ("naive", naive.train)):
        tasks[name] = train_task(trainer, ids, B1, T1)
    r = measure(tasks, args.seconds, args.rounds, report.log)
    peak = r.pop("peak")["best"]
    flops, executed = arch1_flops_per_char(n1), arch1_executed_flops_per_char(n1)
    report.add("matmul_peak_arch1_bound", peak / flops, gflops=peak / 1e9,
               train_flops_per_char=flops)
    best = {k: v["best"] for k, v in r.items()}
    for name, stats in r.items():
        fields = dict(median=stats["median"], batch=B1, unroll=T1,
                      peak_fraction=best[name] * flops / peak)
        if name.startswith("tf_rnn"):
            fields.update(vs_keras=ratio(best[name], best["keras_simplernn"]),
                          vs_naive=ratio(best[name], best["naive"]),
                          executed_peak_fraction=best[name] * executed / peak)
        report.add(f"train/arch1/{name}", best[name], **fields)

    summary = run_training_combines(report, args, ids)

    B2, T2, n2 = 64, args.arch2_unroll, 50  # the Arch 2 seed shape
    report.log(f"Arch 2 training (batch {B2}, unroll {T2}, n {n2}):")
    _, _, xla2 = tf_rnn_trainer("text8_arch2", num_unrollings=T2, jit_compile=True)
    _, _, default2 = tf_rnn_trainer("text8_arch2", num_unrollings=T2, jit_compile=False)
    naive2 = _baselines.NaiveArch2(ALPHABET, n2, B2)
    tasks = {name: train_task(trainer, ids, B2, T2) for name, trainer in
             (("tf_rnn", xla2), ("tf_rnn_no_xla", default2), ("naive", naive2.train))}
    r2 = measure(tasks, args.seconds, args.rounds, report.log)
    best2 = {k: v["best"] for k, v in r2.items()}
    for name, stats in r2.items():
        fields = dict(median=stats["median"], batch=B2, unroll=T2)
        if name.startswith("tf_rnn"):
            fields.update(vs_naive=ratio(best2[name], best2["naive"]))
        report.add(f"train/arch2/{name}", best2[name], **fields)
    return {**summary, "arch1_vs_keras": ratio(best["tf_rnn"], best["keras_simplernn"]),
            "arch1_peak_fraction": best["tf_rnn"] * flops / peak,
            "arch2_vs_naive": ratio(best2["tf_rnn"], best2["naive"]),
            "arch1_no_xla_vs_keras": ratio(best["tf_rnn_no_xla"], best["keras_simplernn"]),
            "arch2_no_xla_vs_naive": ratio(best2["tf_rnn_no_xla"], best2["naive"])}


def run_training_combines(report, args, ids):
    """Arch 1 `sum` and `mul` at text8_best's shape against Keras SimpleRNN of that width."""
    import keras

    from experiments import _baselines
    from tf_rnn.base import config

    best = config.get_preset("text8_best")
    B, T, n = best.batch_size, args.arch1_unroll, best.num_nodes
    report.log(f"Arch 1 sum and mul training (text8_best shape: batch {B}, unroll {T}, "
               f"state {n}, Adam):")
    tasks = {f"tf_rnn_{c}": train_task(tf_rnn_trainer("text8_best", combine=c,
                                                      num_unrollings=T)[2], ids, B, T)
             for c in ("sum", "mul")}
    optimizer = keras.optimizers.Adam(best.learning_rate, global_clipnorm=best.clip_norm)
    keras_rnn = _baselines.KerasCharRNN(ALPHABET, n, B, T, optimizer=optimizer)
    tasks["keras_simplernn"] = train_task(keras_rnn.train, ids, B, T)
    r = measure(tasks, args.seconds, args.rounds, report.log)
    keras_best = r["keras_simplernn"]["best"]
    for name, stats in r.items():
        fields = dict(median=stats["median"], batch=B, unroll=T, state=n)
        if name != "keras_simplernn":
            fields["vs_keras"] = ratio(stats["best"], keras_best)
        report.add(f"train/arch1_combines/{name}", stats["best"], **fields)
    return {f"arch1_{c}_vs_keras": ratio(r[f"tf_rnn_{c}"]["best"], keras_best)
            for c in ("sum", "mul")}


def bf16_task(rows, n, steps, dtype):
    """fn() -> characters (rows x steps: a row per character) through `steps` dependent
    (rows, n) x (n, n) products in `dtype` (2·n² FLOPs per character), each
    through tanh: the recurrence's shape (rows = B, steps = T) or, with one step, a
    window's input projection (rows = T·B)."""
    import tensorflow as tf

    x = tf.cast(tf.random.normal([rows, n]) * 0.1, dtype)
    w = tf.cast(tf.random.normal([n, n]) / math.sqrt(n), dtype)

    @tf.function
    def run(h):
        for _ in range(steps):
            h = tf.tanh(tf.matmul(h, w))
        return h[0, 0]

    def fn():
        run(x).numpy()
        return rows * steps

    return fn


def run_bf16(report, args):
    """bfloat16 against float32 matmuls at the presets' shapes (text8_best n = 384,
    text8_indrnn n = 512): the recurrence, 40 dependent (32, n)·(n, n) products, and a
    window's projection, one (1280, n)·(n, n). Run it again under
    ONEDNN_DEFAULT_FPMATH_MODE=BF16 to see oneDNN's bf16 math mode on the float32 rows."""
    import os

    import tensorflow as tf

    report.log(f"bf16 vs float32 matmuls (ONEDNN_DEFAULT_FPMATH_MODE="
               f"{os.environ.get('ONEDNN_DEFAULT_FPMATH_MODE', 'unset')}):")
    shapes = {f"{kind}_n{n}": (rows, n, steps) for n in (384, 512)
              for kind, rows, steps in (("recurrence", 32, 40), ("projection", 1280, 1))}
    tasks = {f"{name}_{dtype}": bf16_task(*shape, getattr(tf, dtype))
             for name, shape in shapes.items() for dtype in ("float32", "bfloat16")}
    r = measure(tasks, args.seconds, args.rounds, report.log)
    speedups = {}
    for name in shapes:
        f32, b16 = r[f"{name}_float32"]["best"], r[f"{name}_bfloat16"]["best"]
        speedups[name] = ratio(b16, f32)
        n = shapes[name][1]
        for dtype, stats in (("float32", f32), ("bfloat16", b16)):
            report.add(f"bf16/{name}/{dtype}", stats, median=r[f"{name}_{dtype}"]["median"],
                       gflops=stats * 2 * n * n / 1e9,
                       vs_float32=ratio(stats, f32))
    return {"bf16_speedup": speedups}


def run_eval(report, args, ids):
    """Evaluation throughput: `tf_rnn.engine.steps.evaluate` over a split, state carried."""
    from tf_rnn.engine import steps

    split = ids[:args.eval_chars]
    report.log(f"Evaluation over {len(split):,} characters (32 streams, windows of the "
               f"preset's unroll):")
    tasks = {}
    for arch in ("arch1", "arch2"):
        cfg, model, _ = tf_rnn_trainer(f"text8_{arch}")
        for name, jit in (("tf_rnn", True), ("tf_rnn_no_xla", False)):
            eval_step = steps.make_eval_step(model, jit_compile=jit)

            def fn(model=model, cfg=cfg, eval_step=eval_step):
                return steps.evaluate(model, split, cfg.eval_batch_size, cfg.num_unrollings,
                                      eval_step)["chars"]

            tasks[f"eval/{arch}/{name}"] = fn
    r = measure(tasks, args.seconds, max(1, args.rounds // 2), report.log)
    for name, stats in r.items():
        report.add(name, stats["best"], median=stats["median"], split_chars=len(split))


def run_sampling(report, args):
    """Sampling with the compiled loop (1 and 64 streams) against a Python loop."""
    from experiments import _baselines
    from tf_rnn.engine import sampling

    _, model, _ = tf_rnn_trainer("text8_arch1")
    vocab = vocab_lib.Vocabulary.text8()
    generator = sampling.make_generator(model.step)
    loop = _baselines.PythonLoopSampler(model.step)
    report.log("Sampling (Arch 1 seed shape, temperature 1):")
    seeds = iter(range(1, 1 << 30))

    def compiled(streams, length):
        def fn():
            texts = sampling.sample(model, vocab, "", length, seed=next(seeds),
                                    num_streams=streams, generator=generator)
            return sum(len(t) - 1 for t in texts)  # the first, random character is not generated
        return fn

    def python_loop():
        loop.generate(np.zeros([1], np.int32), model.zero_state(1), args.loop_length)
        return args.loop_length

    tasks = {"loop": python_loop, "1": compiled(1, args.sample_length),
             "64": compiled(64, args.sample_length // 4)}
    r = measure(tasks, args.seconds, args.rounds, report.log)
    loop_rate = r["loop"]["best"]
    report.add("sample/arch1/python_loop_1_stream", loop_rate, median=r["loop"]["median"])
    for streams in ("1", "64"):
        report.add(f"sample/arch1/tf_rnn_{streams}_stream{'s' if streams != '1' else ''}",
                   r[streams]["best"], median=r[streams]["median"],
                   vs_loop=ratio(r[streams]["best"], loop_rate))
    return {"sampling_vs_loop": ratio(r["1"]["best"], loop_rate),
            "sampling_64_streams_chars_per_sec": r["64"]["best"]}


def run_scaling(report, args, ids):
    """Arch 1 training chars/s and peak memory against state size x unroll length."""
    reset, peak_mb = peak_rss_tracker()
    report.log("Scaling (Arch 1, batch 32, XLA): state size x unroll")
    for state_size in args.scale_states:
        for unroll in args.scale_unrolls:
            before = reset()
            _, _, train = tf_rnn_trainer("text8_arch1", num_nodes=state_size // 2,
                                         num_unrollings=unroll, jit_compile=True)
            r = measure({"train": train_task(train, ids, 32, unroll)},
                        args.seconds / 2, max(1, args.rounds // 2), report.log)["train"]
            peak = peak_mb()
            report.add(f"scale/arch1/state{state_size}_unroll{unroll}", r["best"],
                       state_size=state_size, unroll=unroll,
                       peak_rss_mb=peak,
                       peak_rss_increase_mb=None if None in (peak, before) else
                       max(0.0, peak - before))


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.benchmark",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="a few seconds in all: short bursts, one scaling point")
    p.add_argument("--seconds", type=float, help="measured seconds per row "
                   "(default 8, --quick 0.4)")
    p.add_argument("--rounds", type=int, help="bursts per row (default 8, --quick 2)")
    p.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--quality", action="store_true",
                   help="also train text8_arch1, text8_arch1_tuned and the Keras baseline "
                   "for the same minutes each and compare validation bits per character")
    p.add_argument("--minutes", type=float, default=3.0, help="--quality: minutes per model")
    p.add_argument("--data", help="--quality: corpus (default: text8, downloaded)")
    p.add_argument("--intra-op-threads", type=int, default=0,
                   help="TensorFlow intra-op threads for every row (default 0: TF's own "
                   "choice, one per core)")
    args = p.parse_args(argv)
    quick = args.quick
    args.seconds = args.seconds or (0.4 if quick else 8.0)
    args.rounds = args.rounds or (2 if quick else 8)
    if args.seconds <= 0 or args.rounds <= 0:
        p.error(f"--seconds and --rounds must be positive, got {args.seconds}, {args.rounds}")
    args.sections = set(args.sections.split(",")) | ({"quality"} if args.quality else set())
    unknown = args.sections - set(SECTIONS)
    if unknown:
        p.error(f"unknown --sections {sorted(unknown)}")
    # --quick keeps every row but shortens the windows (compiling a 40-step unroll
    # takes longer than all of its measurements): its figures are a smoke test.
    args.arch1_unroll, args.arch2_unroll = (10, 10) if quick else (40, 20)
    args.eval_chars = 20_000 if quick else 500_000
    args.sample_length = 500 if quick else 4000
    args.loop_length = 40 if quick else 200
    args.scale_states = (100,) if quick else (100, 256, 512, 1024)
    args.scale_unrolls = (10,) if quick else (20, 40, 100)
    return args


def run(args):
    """Every row of `args.sections`; returns the summary line ({"summary": {...}})."""
    import tensorflow as tf

    if args.intra_op_threads:  # before the first op: TF fixes its thread pools then
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    report = Report()
    ids = np.random.default_rng(0).integers(0, ALPHABET, SPEED_CHARS).astype(np.int32)
    summary = {}
    if "train" in args.sections:
        summary.update(run_training(report, args, ids))
    if "indrnn" in args.sections:
        summary.update(run_indrnn(report, args, ids))
    if "stacks" in args.sections:
        summary.update(run_stacks(report, args, ids))
    if "gated" in args.sections:
        summary.update(run_gated(report, args, ids))
    if "eval" in args.sections:
        run_eval(report, args, ids)
    if "sample" in args.sections:
        summary.update(run_sampling(report, args))
    if "scale" in args.sections:
        run_scaling(report, args, ids)
    if "bf16" in args.sections:
        summary.update(run_bf16(report, args))
    if "quality" in args.sections:
        from experiments import _quality

        summary.update(_quality.run(report, args))
    report.log("\n" + report.table())
    keys = ("arch1_vs_keras", "arch1_peak_fraction", "arch2_vs_naive", "sampling_vs_loop")
    summary = {**{k: summary.get(k) for k in keys}, **summary,
               "intra_op_threads": args.intra_op_threads or "default",
               "targets_met": {k: summary[k] >= v for k, v in TARGETS.items()
                               if summary.get(k) is not None}}
    return {"summary": round_figures(summary)}


def main(argv=None):
    return cli.run_and_report(run, parse_args(argv), prog="experiments.benchmark")


if __name__ == "__main__":
    sys.exit(main())
