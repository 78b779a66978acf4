"""The `tf-rnn` command line: every command's options, and the help shared with the
experiment modules (`add_run_arguments`, `add_verbose_argument`).

Reading the options imports no TensorFlow, so `--help` and `--version` answer at once;
the commands themselves are in `tf_rnn.cli`.
"""

import argparse
import math
import dataclasses
import textwrap

import tf_rnn
from tf_rnn.base import config as config_lib, files, model_table
from tf_rnn.data import corpora

class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with errors of one line, as every other user error here:
    `NAME: error: MESSAGE; see PROG --help` on stderr and exit status 2 (the usage
    block is for --help).

    NAME is `error_name` where set (`tf-rnn` for each command's parser, so that every
    error of the command starts alike), else the parser's prog.
    """

    error_name = None

    def parse_args(self, args=None, namespace=None):
        """argparse's, but an unknown option after a command is that command's error:
        its --help is the one that lists the options."""
        args, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen_command(args).error(f"unrecognized arguments: {' '.join(extras)}")
        return args

    def _chosen_command(self, args):
        """The parser of the command `args` chose, or this one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices.get(getattr(args, action.dest, None), self)
        return self

    def error(self, message):
        message = " ".join(str(message).split())  # one line, whatever argparse wrote
        self.exit(2, f"{self.error_name or self.prog}: error: {message}; see {self.prog} "
                     f"--help\n")


def positive_minutes(value):
    """argparse `type` of --minutes: a finite number above zero (0 is no budget in the
    config, but as a flag it would train with no limit, which nobody asks for so)."""
    try:
        minutes = float(value)
    except ValueError:
        minutes = math.nan
    if not 0 < minutes < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number of minutes above 0, got "
                                         f"{value!r}")
    return minutes


def output_path(value):
    """argparse `type` of an output file or directory (--out, --plot, --report): its
    directory must exist, checked before any work (`tf_rnn.base.files.require_parent`)."""
    parent = files.missing_parent(value)
    if parent is not None:
        raise argparse.ArgumentTypeError(f"{value!r}: {files.no_directory(parent)}")
    return value


DESCRIPTION = "The `tf-rnn` command: train | eval | sample | score | inspect | export | diagnose."


def _add_train(sub):
    p = sub.add_parser("train", help="train a model (resumes a run found in --workdir)",
                       epilog=_train_epilog())
    p.add_argument("--preset", help="preset name, listed below (default: the work "
                   "directory's saved config, else text8_arch1)")
    add_run_arguments(p)
    return p


def add_run_arguments(p, workdir_required=True):
    """--data / --workdir / --steps / --minutes / --set / --strategy, shared with the
    experiments (whose --workdir has a default: `workdir_required=False`)."""
    p.add_argument("--data", help="corpus: a UTF-8 text file (or a .gz or .zip holding "
                   f"one), or a name ({corpora.describe()}). Default: a resumed run's own "
                   "corpus, recorded in its run.json; for a new run text8, downloaded into "
                   "--cache-dir")
    p.add_argument("--workdir", required=workdir_required, help="the run's directory" + (
        "" if workdir_required else " (default: runs/PRESET; runs/PRESET-NAME on a corpus "
        "shipped with the package, e.g. --data shakespeare)"))
    p.add_argument("--steps", type=int, help="train until this step")
    p.add_argument("--minutes", type=positive_minutes, help="train for this many "
                   "minutes, the time of every validation, sample and save included (config "
                   "field `budget_minutes`; with --steps: whichever ends first); "
                   "schedule=linear or cooldown then decays to zero at the budget's end")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set batch_size=64")
    p.add_argument("--strategy", choices=config_lib.STRATEGIES,
                   help="tf.distribute strategy (config field `strategy`): default (one "
                   "device), mirrored (all local GPUs), multiworker (the cluster in TF_CONFIG)")
    p.add_argument("--cache-dir", help=_CACHE_DIR_HELP)
    p.add_argument("--allow-new-corpus", action="store_true", help="resume a run on "
                   "another corpus than the one recorded in its run.json (refused "
                   "without this flag)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (a log "
                   "line every log_every steps instead)")
    add_verbose_argument(p)


def add_verbose_argument(p):
    """--verbose: show TensorFlow's own log lines (hidden by default, see tf_rnn.base.logs)."""
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log "
                   "lines (also: TF_RNN_VERBOSE=1)")


_CHECKPOINT_HELP = (
    "which checkpoint of the run: latest, best (the lowest validation BPC; kept by runs "
    "with eval_every > 0) or ckpt-N (a kept one of step N). Default latest, for every "
    "command: the weights whose figures training printed last and that a resume goes on "
    "from; the JSON line names the checkpoint used (docs/cli.md)")


def add_checkpoint_argument(p):
    """--checkpoint best|latest|ckpt-N of eval, sample, export and diagnose."""
    p.add_argument("--checkpoint", metavar="best|latest|ckpt-N", help=_CHECKPOINT_HELP)


def _add_eval(sub):
    p = sub.add_parser("eval", help="bits per character of a checkpoint (the latest)")
    p.add_argument("--workdir", required=True, help="the run's directory")
    add_checkpoint_argument(p)
    p.add_argument("--data", help="corpus (default: the one the run trained on)")
    p.add_argument("--split", default="valid", choices=("train", "valid", "test", "all"),
                   help="all: the whole corpus as one text")
    p.add_argument("--batch-size", type=int, help="parallel streams (default: the "
                   "config's eval_batch_size)")
    p.add_argument("--windows", type=int, default=0, help="> 0: score this many random "
                   "windows, each from the zero state, the loss averaged over every "
                   "position (nanoGPT's estimate_loss) instead of the streams")
    p.add_argument("--window-length", type=int, default=256, help="characters each "
                   "window predicts (nanoGPT's shakespeare_char block_size)")
    p.add_argument("--seed", type=int, default=0, help="the windows' offsets")
    p.add_argument("--cache-dir", help=_CACHE_DIR_HELP)
    add_verbose_argument(p)
    return p


def _add_model_source(p, export_help):
    """--workdir (with --checkpoint) or --export: where sample and score find the model."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a run's directory (--checkpoint: which)")
    source.add_argument("--export", help=export_help)
    add_checkpoint_argument(p)


def _add_sample(sub):
    p = sub.add_parser("sample", help="generate text from a checkpoint (the latest) or "
                       "an export")
    _add_model_source(p, "a SavedModel written by `tf-rnn export` (no checkpoint needed)")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("--length", type=int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="<= 0: greedy")
    p.add_argument("--top-k", type=int, default=0, help="> 0: sample among the k best")
    p.add_argument("--seed", type=int, help="makes the sample reproducible")
    p.add_argument("--num-streams", type=int, default=1, help="independent samples")
    p.add_argument("--out", metavar="FILE", type=output_path, help="write the text to "
                   "FILE (atomically); "
                   "the JSON line then gives its path and length, not the text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown "
                   "on stderr for samples longer than one chunk, 20 000 characters)")
    add_verbose_argument(p)
    return p


def _add_score(sub):
    p = sub.add_parser("score", help="every character's log2-probability and the model's "
                       "guesses, given the text before it (JSON lines)")
    _add_model_source(p, "a SavedModel written by `tf-rnn export`")
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to score")
    text.add_argument("--file", help="a UTF-8 file to score")
    p.add_argument("--by", choices=("char", "line"), default="char",
                   help="one JSON line per character (default) or per line of text")
    p.add_argument("--top-k", type=int, default=5, help="guesses shown per character")
    add_verbose_argument(p)
    return p


def _add_inspect(sub):
    p = sub.add_parser("inspect", help="one self-contained HTML report of what the model "
                       "and each unit do over a text (docs/cli.md)")
    p.add_argument("--workdir", required=True, help="a run's directory (--checkpoint: which)")
    add_checkpoint_argument(p)
    p.add_argument("--file", required=True, help="a UTF-8 file: the text to inspect")
    p.add_argument("--chars", type=int, default=2000, help="its first N characters "
                   "(default 2000; read as `tf-rnn score` reads them)")
    p.add_argument("--out", required=True, metavar="FILE.html", type=output_path,
                   help="the report "
                   "(written atomically; the same inputs give the same bytes)")
    add_verbose_argument(p)
    return p


def _add_export(sub):
    p = sub.add_parser("export", help="write a checkpoint (the latest) as a SavedModel")
    p.add_argument("--workdir", required=True, help="the run's directory")
    add_checkpoint_argument(p)
    p.add_argument("--out", type=output_path, help="export directory (default: "
                   "WORKDIR/export; its parent must exist)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty export directory (atomically)")
    add_verbose_argument(p)
    return p


def _add_diagnose(sub):
    p = sub.add_parser("diagnose", help="gradient flow through time, unit activity and "
                       "recurrent spectrum of a checkpoint (the latest; tf_rnn.inspect.diagnostics)")
    p.add_argument("--workdir", required=True, help="the run's directory")
    add_checkpoint_argument(p)
    p.add_argument("--data", help="corpus (default: the one the run trained on)")
    p.add_argument("--windows", type=int, default=4, help="validation windows measured")
    p.add_argument("--plot", metavar="FILE.png", type=output_path, help="draw gradient "
                   "vs lag and unit "
                   "activity (needs matplotlib: the `plot` extra)")
    p.add_argument("--cache-dir", help=_CACHE_DIR_HELP)
    return p


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help; epilogs (train's tables) kept as written.

    No "(default: ...)" where there is nothing to say (None, off, empty) or where the
    help already tells what the default is.
    """

    def _get_help_string(self, action):
        help = action.help or ""
        if (action.default is None or action.default is False or action.default in ("", [])
                or "default" in help):
            return help
        return super()._get_help_string(action)


_CACHE_DIR_HELP = ("where text8.zip is cached (default: $TF_RNN_CACHE, else "
                   "~/.cache/tf_rnn)")


def _model_line(entry):
    """What a model is, and the settings of its own: `tf-rnn train --help`'s line."""
    own = [*entry.fields, *(("num_layers", "residual") if entry.stacks else ()),
           *(("dropout",) if entry.dropout else ())]
    return f"{entry.summary}; its settings: {', '.join(own) or 'none of its own'}"


def _train_epilog():
    """The presets and every `--set` key with its default and description (config.py's)."""
    defaults = config_lib.Config()
    lines = ["presets (--preset NAME): what each is for, then the fields it sets apart "
             "from the defaults:"]
    for name, preset in config_lib.PRESETS.items():
        changed = " ".join(f"{f}={v}" for f, v in preset.to_dict().items()
                           if v != getattr(defaults, f)) or "(the defaults)"
        lines.append(f"  {name:<21}{config_lib.PRESET_PURPOSES[name]}")
        lines += textwrap.wrap(changed, 79, initial_indent=" " * 23,
                               subsequent_indent=" " * 23, break_on_hyphens=False)
    lines += ["", "models (--set model=NAME), from the table of models (tf_rnn.base.model_table):"]
    for name, entry in model_table.MODELS.items():
        lines += textwrap.wrap(_model_line(entry), 79, initial_indent=f"  {name:<19}",
                               subsequent_indent=" " * 21, break_on_hyphens=False)
    lines += ["", "config fields (--set KEY=VALUE, repeatable): name, default, meaning"]
    for field in dataclasses.fields(config_lib.Config):
        head = f"  {field.name:<19}{field.default!s:<10} "
        lines += textwrap.wrap(field.metadata["help"], 79, initial_indent=head,
                               subsequent_indent=" " * len(head), break_on_hyphens=False)
    return "\n".join(lines)


def build_parser():
    parser = ArgumentParser(prog="tf-rnn", description=DESCRIPTION,
                            formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {tf_rnn.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_eval(sub)
    _add_sample(sub)
    _add_score(sub)
    _add_inspect(sub)
    _add_export(sub)
    _add_diagnose(sub)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
        command.error_name = parser.prog
    return parser
