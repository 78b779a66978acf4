"""Running a command with recorders in place of the library functions it calls: the
machinery of test_options (not a test module).

    calls = run(cli.main, ["export", "--workdir", "w"], (export, "export", value({})))
    calls.one("export")["overwrite"]   # the arguments of that call, by parameter name

Each recorder binds a call's arguments to the replaced function's own signature, so a
value passed by position or by keyword reads the same. A recorder then calls the
original (THROUGH), stops the command (STOP: what the test came for has been seen, the
rest of the command is not run) or returns what a fake makes of the arguments.
"""

import argparse
import contextlib
import importlib
import inspect
import io
import pkgutil

import pytest

from tf_rnn.cli import arguments

THROUGH, STOP = "through", "stop"


class Stop(Exception):
    """Raised by a STOP recorder: the command has gone far enough."""


class Replace:
    """A patch mode: `owner.name` is `obj` for the run (no recorder: a module, a clock)."""

    def __init__(self, obj):
        self.obj = obj


def value(result):
    """A fake that ignores its arguments and returns `result`."""
    return lambda arguments: result


class Calls:
    """What one run recorded: {name: [arguments of each call]}, stdout, stderr, status."""

    def __init__(self):
        self.calls, self.out, self.err, self.status = {}, "", "", None

    def all(self, name):
        return self.calls.get(name, [])

    def one(self, name):
        """The arguments of the one call of `name` (fails unless called exactly once)."""
        got = self.all(name)
        assert len(got) == 1, f"{name} called {len(got)} times, expected once"
        return got[0]


def _arguments(original, args, kwargs):
    """{parameter: value} of a call, defaults filled in; **kwargs flattened into it."""
    try:
        bound = inspect.signature(original).bind(*args, **kwargs)
    except (TypeError, ValueError):  # no signature to bind to: keep what was passed
        return {**dict(enumerate(args)), **kwargs}
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    for name, param in inspect.signature(original).parameters.items():
        if param.kind is param.VAR_KEYWORD:
            arguments.update(arguments.pop(name, {}))
    return arguments


def run(main, argv, *patches, stdin_tty=False):
    """`main(argv)` with recorders; returns its Calls (status "stopped" after a STOP).

    Args:
      patches: (owner, name, mode) each: `owner.name` is replaced for this run by a
        recorder named `name`; mode THROUGH, STOP, a fake(arguments) -> result,
        Replace(obj) (no recorder), or None (left as it is).
    """
    calls = Calls()
    with pytest.MonkeyPatch.context() as mp:
        for owner, name, mode in patches:
            if mode is None:
                continue
            if isinstance(mode, Replace):
                mp.setattr(owner, name, mode.obj)
                continue
            original = getattr(owner, name)
            mp.setattr(owner, name, _recorder(calls, name, original, mode))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                calls.status = main(argv)
            except Stop:
                calls.status = "stopped"
        calls.out, calls.err = out.getvalue(), err.getvalue()
    return calls


def _recorder(calls, name, original, mode):
    def recorder(*args, **kwargs):
        arguments = _arguments(original, args, kwargs)
        calls.calls.setdefault(name, []).append(arguments)
        if mode == STOP:
            raise Stop(name)
        if mode == THROUGH:
            return original(*args, **kwargs)
        return mode(arguments)

    return recorder


# The parsers -------------------------------------------------------------------------

class _Parsed(Exception):
    def __init__(self, parser):
        super().__init__("parser captured")
        self.parser = parser


def parser_of(main):
    """The ArgumentParser that `main(argv)` parses its argv with (it is not run)."""
    def capture(self, args=None, namespace=None):
        raise _Parsed(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", capture)
        mp.setattr(arguments.ArgumentParser, "parse_args", capture)  # tf_rnn's own
        try:
            main([])
        except _Parsed as parsed:
            return parsed.parser
    raise AssertionError(f"{main} returned without parsing its arguments")


def options(parser):
    """{option string: action} of a parser, its longest spelling for each action."""
    return {max(a.option_strings, key=len): a for a in parser._actions if a.option_strings}


def subparsers(parser):
    """{command: parser} of a parser's subcommands."""
    return next(a.choices for a in parser._actions
                if isinstance(a, argparse._SubParsersAction))


def experiment_modules():
    """{"experiments.NAME": module} of every runnable experiment (no leading "_")."""
    import experiments

    return {f"experiments.{m.name}": importlib.import_module(f"experiments.{m.name}")
            for m in pkgutil.iter_modules(experiments.__path__)
            if not m.name.startswith("_")}
