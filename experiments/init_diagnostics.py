"""Why the faithful Arch 1 preset learns slowly: its initialisation against others.

Trains the text8_arch1 preset (the seed's model, Adadelta, clip) once per
initialisation for the same number of steps, and measures each at step 0 and at the
end with `tf_rnn.inspect.diagnostics` on the validation split: the fraction of dead recurrent
units and the gradient reaching the hidden state k steps back. One JSON line per
initialisation, then a summary; --plot FILE.png draws the end figures side by side
(the picture in docs/diagnostics.md): the gradient by lag of the window's loss and of the last
step's loss, and the activity of the recurrent units (Arch 1 concat: r, the n units
that feed back).

    python -m experiments.init_diagnostics --data PATH [--steps 300] [--inits seed,glorot,irnn]
                                           [--workdir DIR] [--plot FILE.png]
"""

import json
import sys

from tf_rnn import cli
from tf_rnn.cli import arguments

KEYS = ("recurrent_dead_fraction", "recurrent_active_fraction", "dead_fraction",
        "grad_ratio", "grad_ratio_last", "sigma_max", "spectral_radius", "loss")


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.init_diagnostics",
                                 description=__doc__.splitlines()[0])
    p.add_argument("--data", help="corpus (default: text8)")
    p.add_argument("--preset", default="text8_arch1")
    p.add_argument("--inits", default="seed,glorot,irnn", help="comma-separated `init`s")
    p.add_argument("--steps", type=int, default=300, help="training steps of each run")
    p.add_argument("--windows", type=int, default=4, help="validation windows measured")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field of every run")
    p.add_argument("--workdir", default="runs/init_diagnostics")
    p.add_argument("--plot", metavar="FILE.png", type=arguments.output_path,
                   help="draw the picture (the `plot` extra)")
    p.add_argument("--cache-dir")
    return p.parse_args(argv)


def run(args):
    import keras

    from tf_rnn import models
    from tf_rnn.base import config as config_lib
    from tf_rnn.inspect import diagnostics, plots, probes
    from tf_rnn.run import reading
    from tf_rnn.run.directory import Workdir
    from tf_rnn.train import training

    if args.plot:
        plots.require_matplotlib()  # a missing extra fails before training
    base = config_lib.with_overrides(config_lib.get_preset(args.preset).replace(
        steps=args.steps, epochs=0.0, eval_every=0, sample_every=0, diag_every=0,
        checkpoint_every=args.steps, log_every=max(1, args.steps // 10)), args.set)
    ends, rows = {}, {}
    for init in args.inits.split(","):
        config = base.replace(init=init)
        workdir = Workdir(f"{args.workdir}/{init}")
        result = training.train(config, workdir, args.data, cache_dir=args.cache_dir,
                                progress=False)
        model, vocab, _ = reading.load_model(workdir)
        corpus = reading.load_corpus_for(config, workdir, args.data, args.cache_dir)
        keras.utils.set_random_seed(config.seed)  # the run's own step-0 weights
        start = models.build_model(config, vocab.size)
        shape = (config.batch_size, config.num_unrollings, args.windows)
        first = probes.measure_text(start, corpus.valid, *shape)
        end = ends[f"{init}, step {result['step']}"] = probes.measure_text(
            model, corpus.valid, *shape)
        rows[init] = {"init": init, "steps": result["step"], "valid_bpc": result["valid_bpc"],
                      "step0": {k: first.get(k) for k in KEYS},
                      "end": {k: end.get(k) for k in KEYS},
                      # ||dL_T/dh_{T-k}|| for k = 0..3 at the end: does the error cross steps?
                      "end_grad_by_lag_last": end["grad_by_lag_last"][:4]}
        print(json.dumps(rows[init]))
    summary = {"preset": args.preset, "steps": args.steps, "inits": list(rows),
               "recurrent_dead_step0": {k: r["step0"]["recurrent_dead_fraction"]
                                        for k, r in rows.items()},
               "recurrent_dead_end": {k: r["end"]["recurrent_dead_fraction"]
                                      for k, r in rows.items()}}
    if args.plot:
        model = diagnostics.model_label(base).rsplit(", init", 1)[0]  # the init varies
        summary["plot"] = plots.diagnostics_figure(args.plot, ends, title=(
            f"{args.preset} ({model}), {args.steps} steps, by initialisation: "
            f"{args.windows} validation windows of {base.batch_size} x "
            f"{base.num_unrollings} characters"))
    return summary


def main(argv=None):
    return cli.run_and_report(run, parse_args(argv), prog="experiments.init_diagnostics")


if __name__ == "__main__":
    sys.exit(main())
