"""experiments/ as a set of runnable experiments, read with `ast` (no TensorFlow import):
one entry convention, an index that lists every module, no private names across modules."""

import ast
import pathlib
import re

import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
MODULES = sorted(p.stem for p in EXPERIMENTS.glob("*.py") if p.stem != "__init__")
RUNNABLE = [m for m in MODULES if not m.startswith("_")]
HELPERS = [m for m in MODULES if m.startswith("_")]
# Python's data model, public: `type(err).__name__`; not `train.__self__` (another
# object's insides) or `parser._actions`.
PUBLIC_DUNDERS = {"__name__", "__qualname__", "__doc__", "__class__", "__module__",
                  "__version__"}


def _tree(name):
    path = EXPERIMENTS / f"{name}.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _index():
    """The names the package docstring lists: lines '  NAME   what it is'."""
    doc = ast.get_docstring(_tree("__init__"))
    return re.findall(r"^  (_?[a-z0-9_]+) {2,}\S", doc, re.MULTILINE)


def _is_main_guard(node):
    """`if __name__ == "__main__":` whose body is `sys.exit(main())`."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and ast.unparse(node.test) in ("__name__ == '__main__'",
                                           "__name__ == \"__main__\"")):
        return False
    return [ast.unparse(n) for n in node.body] == ["sys.exit(main())"]


def test_the_modules_are_found():
    assert {"text8_arch1", "hello", "benchmark", "lstm_streams"} <= set(RUNNABLE)
    assert {"_run", "_report"} <= set(HELPERS)


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_runnable_module_has_main_argv_none_and_the_main_guard(name):
    tree = _tree(name)
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert len(mains) == 1, f"experiments.{name} defines no top-level main()"
    args = mains[0].args
    assert ([a.arg for a in args.args] == ["argv"] and len(args.defaults) == 1
            and isinstance(args.defaults[0], ast.Constant) and args.defaults[0].value is None
            and not (args.posonlyargs or args.kwonlyargs or args.vararg or args.kwarg)), (
        f"experiments.{name}: main must be `def main(argv=None)`, got "
        f"`def main({ast.unparse(args)})`")
    assert any(_is_main_guard(n) for n in tree.body), (
        f"experiments.{name} lacks `if __name__ == \"__main__\": sys.exit(main())`")


def test_the_package_docstring_lists_every_module_once_and_no_other():
    listed = _index()
    assert sorted(listed) == MODULES, (
        f"experiments/__init__.py index: missing {sorted(set(MODULES) - set(listed))}, "
        f"stale {sorted(set(listed) - set(MODULES))}, listed {listed}")


def _private_uses(tree):
    """'line: what' for each private name one module takes from another: `from M import
    _x` (but for the shared helper modules themselves, `from experiments import _run`),
    and `X._y` or `X.__y__` on anything but `self`, `cls`, `super()` (another module's private
    name, or the inside of another module's object: `parser._actions`,
    `train.__self__`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                helper = node.module == "experiments" and alias.name in HELPERS
                if alias.name.startswith("_") and not helper:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and node.attr not in PUBLIC_DUNDERS):
            owner = node.value
            helper = ast.unparse(owner) == "experiments" and node.attr in HELPERS
            if ast.unparse(owner) not in ("self", "cls", "super()") and not helper:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("name", MODULES + ["__init__"])
def test_no_module_reaches_for_another_modules_private_names(name):
    assert _private_uses(_tree(name)) == [], f"experiments/{name}.py"


def test_the_private_name_check_sees_the_three_forms_it_forbids():
    tree = ast.parse("from experiments._report import _round\n"
                     "from experiments import _run, _nothing\n"
                     "import experiments._run\n"
                     "def f(parser, lstm):\n"
                     "    experiments._run.train_preset\n"
                     "    super().__init__(), type(parser).__name__\n"
                     "    return parser._actions, lstm.train.__self__, self._ok\n")
    assert _private_uses(tree) == ["1: from experiments._report import _round",
                                   "2: from experiments import _nothing",
                                   "7: parser._actions", "7: lstm.train.__self__"]
