"""What the experiments share: training a preset on a corpus (`train_preset`, the whole
`main` of each preset module), and the flags common to the toy systems
(`add_toy_arguments`, `toy_settings`).

Every runnable module of `experiments` has `main(argv=None) -> int` (the exit status)
and runs its work through `tf_rnn.cli.run_and_report`: TensorFlow's logs kept quiet,
the JSON result last on stdout, a user error as one line and exit status 2.
"""

import hashlib
import json

from tf_rnn import cli
from tf_rnn.cli import arguments


def train_preset(preset, description, argv=None):
    """Parses --data/--workdir/--steps/--set[/--plot], trains `preset`, prints the JSON
    result; --plot FILE.png draws the run's loss curve (the `plot` extra).

    Returns the exit status (`tf_rnn.cli.run_and_report`); --workdir defaults to
    `default_workdir`.
    """
    parser = arguments.ArgumentParser(prog=f"python -m experiments.{preset}",
                                       description=description)
    arguments.add_run_arguments(parser, workdir_required=False)
    parser.add_argument("--plot", metavar="FILE.png", type=arguments.output_path,
                        help="draw the loss curve (train "
                        "and validation BPC against step; needs the `plot` extra)")
    args = parser.parse_args(argv)
    args.preset = preset
    if args.workdir is None:
        args.workdir = default_workdir(preset, args.data)
    return cli.run_and_report(_train_and_plot, args, prog=f"experiments.{preset}")


def default_workdir(preset, data):
    """runs/PRESET, or runs/PRESET-NAME on a shipped corpus (`--data shakespeare`): the
    same experiment on text8 and on the shipped corpus are two runs, not a conflict."""
    from tf_rnn.data import corpora

    name = corpora.named(data)
    return f"runs/{preset}-{name}" if name in corpora.SHIPPED else f"runs/{preset}"


def _train_and_plot(args):
    from tf_rnn.inspect import plots
    from tf_rnn.run.directory import Workdir

    if args.plot:
        plots.require_matplotlib()  # a missing extra fails before training
    result = cli.cmd_train(args)
    if args.plot:
        result["plot"] = plots.training_curves(args.plot, Workdir(args.workdir).events_dir,
                                               title=f"{args.preset}: loss curve")
    return result


def add_toy_arguments(parser, name):
    """--set (jit_compile only), --verbose, --workdir and --no-progress of the toy
    experiments, which take their other settings as flags of their own."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="jit_compile=true|false: XLA for the train step (default "
                        "false for the toy systems; see docs/experiments.md)")
    parser.add_argument("--workdir", help=f"the run's directory (default: runs/{name}/ "
                        "plus a short digest of the settings, so that runs with other "
                        "settings do not overwrite each other)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (a loss line every 100 steps instead)")
    arguments.add_verbose_argument(parser)


def toy_settings(args, name, defaults=None):
    """The --set of a toy experiment ({"jit_compile": bool}), and args.workdir resolved.

    Raises:
      ArgumentError: a key other than jit_compile; ConfigError: a value of the wrong type.
    """
    from tf_rnn.base import config as config_lib
    from tf_rnn.base.errors import ArgumentError

    settings = dict(defaults or {"jit_compile": False})
    for item in args.set:
        key = item.partition("=")[0].strip()
        if key not in settings:
            raise ArgumentError(f"experiments.{name} accepts --set {', '.join(settings)} "
                                f"only (its other settings are flags: see --help), got "
                                f"{item!r}.")
        settings[key] = getattr(config_lib.with_overrides(config_lib.Config(), [item]), key)
    if args.workdir is None:
        fields = {k: v for k, v in sorted(vars(args).items())
                  if k not in ("workdir", "no_progress", "verbose", "set", "plot")}
        digest = hashlib.sha1(json.dumps([fields, settings], sort_keys=True,
                                         default=str).encode()).hexdigest()[:8]
        args.workdir = f"runs/{name}/{digest}"
    return settings


def tf_rnn_trainer(preset, alphabet=27, progress=None, **changes):
    """(config, model, train(window) -> loss): the library's compiled step for `preset`
    with `changes`, for the benchmarks' speed rows and quality's contenders; `progress`:
    a budget's fraction spent, which the schedule then follows
    (`tf_rnn.engine.steps.make_optimizer`). `alphabet` defaults to text8's 27 characters."""
    import keras

    from tf_rnn import models
    from tf_rnn.base import config as config_lib
    from tf_rnn.engine import steps

    cfg = config_lib.get_preset(preset).replace(**changes)
    keras.utils.set_random_seed(cfg.seed)
    model = models.build_model(cfg, alphabet)
    optimizer = steps.make_optimizer(cfg, progress=progress)
    step = steps.make_train_step(model, optimizer, cfg.clip_norm, cfg.clip_value,
                                 jit_compile=cfg.jit_compile, seed=cfg.seed)
    state = model.zero_state(cfg.batch_size)

    def train(window):
        nonlocal state
        metrics, state = step(window[:, :-1], window[:, 1:], state)
        return float(metrics["loss"])  # as the training loop reads it every step

    return cfg, model, train
