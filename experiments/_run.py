"""The shared entry point of the experiments that train a preset on a corpus."""

import argparse
import sys

from tf_rnn import cli


def train_preset(preset, description, argv=None, default_workdir=None):
    """Parses --data/--workdir/--steps/--set, trains `preset`, prints the JSON result."""
    parser = argparse.ArgumentParser(description=description)
    cli.add_run_arguments(parser)
    parser.set_defaults(workdir=default_workdir or f"runs/{preset}")
    for action in parser._actions:
        if action.dest == "workdir":
            action.required = False
    args = parser.parse_args(argv)
    args.preset = preset
    # The experiments run the whole train step under XLA: the same math, about twice the
    # chars/s on a CPU (benchmark). `--set jit_compile=false` still wins: it comes later.
    args.set = ["jit_compile=true", *args.set]
    return cli.run_and_report(cli.cmd_train, args, prog=f"experiments.{preset}")


def main(preset, description):
    sys.exit(train_preset(preset, description))
