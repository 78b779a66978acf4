"""The errors a user can cause, apart from the bugs the code may have.

Everything raised because of what a user asked or gave — a bad setting, a bad file, a
work directory that cannot be used as asked, a value out of range — derives from
`UserError`. The CLI and the experiments catch `UserError` only (and OSError: a full
disk or a missing permission is the user's machine, not the code): it prints as one line
`tf-rnn: error: ...` and exits 2, while any other exception is a bug and keeps its
traceback. A plain ValueError stays what Keras raises for a library caller's bad
argument (a layer's constructor): the CLI validates a config before it builds anything.

Two message styles. Each is one or a few full sentences: capitalised, ending with a
full stop; a wrapped reason follows a colon and ends the sentence.
- An argument or a setting, in Keras's form, naming it and the value received:
  "Received an invalid value for argument `top_k`, expected a non-negative integer,
  got -3." A config field says "config field `batch_size`".
- A file, a download or a run: what is wrong with which path, then what to do:
  "Text file 'corpus.txt' is empty." / "The run in 'runs/a' is already at step 10, ...
  Use another --workdir." Paths are quoted (repr) where a message names them.
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


class ArgumentError(UserError):
    """A bad value passed through a command's flag or an experiment's setting (a sampling
    temperature, a toy task's length): Keras's "Received an invalid value for argument"."""


class ExportError(UserError):
    """An export that cannot be written or read as asked (`tf_rnn.serve.export`, `tf_rnn.serve.serving`)."""
