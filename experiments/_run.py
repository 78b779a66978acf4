"""The shared entry point of the experiments that train a preset on a corpus."""

import argparse
import sys

from tf_rnn import cli


def train_preset(preset, description, argv=None, default_workdir=None):
    """Parses --data/--workdir/--steps/--set[/--plot], trains `preset`, prints the JSON
    result; --plot FILE.png draws the run's loss curve (the `plot` extra)."""
    parser = argparse.ArgumentParser(description=description)
    cli.add_run_arguments(parser)
    parser.add_argument("--plot", metavar="FILE.png", help="draw the loss curve (train "
                        "and validation BPC against step; needs the `plot` extra)")
    parser.set_defaults(workdir=default_workdir or f"runs/{preset}")
    for action in parser._actions:
        if action.dest == "workdir":
            action.required = False
    args = parser.parse_args(argv)
    args.preset = preset
    # The experiments run the whole train step under XLA: the same math, about twice the
    # chars/s on a CPU (benchmark). `--set jit_compile=false` still wins: it comes later.
    args.set = ["jit_compile=true", *args.set]
    return cli.run_and_report(_train_and_plot, args, prog=f"experiments.{preset}")


def _train_and_plot(args):
    from tf_rnn import plots
    from tf_rnn.workdir import Workdir

    if args.plot:
        plots.require_matplotlib()  # a missing extra fails before training
    result = cli.cmd_train(args)
    if args.plot:
        result["plot"] = plots.training_curves(args.plot, Workdir(args.workdir).events_dir,
                                               title=f"{args.preset}: loss curve")
    return result


def main(preset, description):
    sys.exit(train_preset(preset, description))
