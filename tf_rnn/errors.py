"""The errors a user can cause, apart from the bugs the code may have.

Everything raised because of what a user asked or gave — a bad setting, a bad file, a
work directory that cannot be used as asked, a value out of range — derives from
`UserError`. The CLI and the experiments catch `UserError` only: it prints as one line
`tf-rnn: error: ...` and exits 2, while any other exception is a bug and keeps its
traceback.

Two message styles, both one sentence or a few, ending with a full stop:
- an argument or setting: Keras's form, "Received an invalid value for argument
  `units`, expected a positive integer, got 0."; a config field says "config field".
- a file or a run: what is wrong with which path, then what to do, capitalised:
  "Text file 'corpus.txt' is empty." / "The run in 'runs/a' ... Use another --workdir."
"""


class UserError(ValueError):
    """A request that cannot be carried out as asked; its message says why and what to do.

    A ValueError, so library callers who catch ValueError (Keras's convention for bad
    arguments) keep working.
    """


class ConfigError(UserError):
    """A bad configuration value: an unknown field, a wrong type, a value out of range."""


class DataError(UserError):
    """Bad data or data file: missing, corrupt, wrong size or digest, unknown characters."""


class WorkdirError(UserError):
    """A work directory that cannot be used as asked (missing, conflicting)."""
