"""The package's layers hold: each layer is a folder of `tf_rnn/`, in the order of the one
map, the table of docs/architecture.md; a module imports only from its own folder or the
folders below, no import cycle exists (lazy imports included), nothing imports the
experiments, and importing tf_rnn changes no process-wide setting.

Read with `ast` alone: no TensorFlow import, so this runs in a second.
"""

import ast
import os
import re
import subprocess
import sys

import pytest
from support import ROOT

PACKAGE = ROOT / "tf_rnn"
ENTRY = "entry"  # tf_rnn/__init__.py and __main__.py: above every folder


def layers():
    """The folders, lowest first, as docs/architecture.md's table lists them."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `(\w+)/` \|", text, flags=re.M)


LAYERS = layers()
# Where a function-level import is allowed: the CLI imports TensorFlow's users lazily so
# that `--help` and `--version` start at once. Optional dependencies (matplotlib) are
# not tf_rnn modules and are not counted here.
LAZY_ALLOWED = {"cli"}


def modules():
    """{dotted name under tf_rnn ("data", "data.vocab", "__main__"): its file}."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def layer_of(module):
    """The layer (index in LAYERS; ENTRY above them all) of a dotted module name."""
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else len(LAYERS)


def _resolve(package, name):
    """`from tf_rnn.package import name`: the module it names (a submodule, or the
    package itself for a name defined there)."""
    dotted = f"{package}.{name}" if package else name
    return dotted if dotted in MODULES else package


def imports(module):
    """{imported tf_rnn module: is the import at module level}."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tf_rnn":
            package = node.module.partition(".")[2]
            names = [_resolve(package, alias.name) for alias in node.names]
            names = [n for n in names if n in MODULES]  # tf_rnn.__version__ is no module
        elif isinstance(node, ast.Import):
            names = [a.name.partition(".")[2] for a in node.names if a.name.startswith("tf_rnn.")]
        for name in names:
            if name != module:
                found[name] = found.get(name, False) or node in tree.body
    return found


def test_the_map_names_every_folder_and_each_folder_says_its_job():
    folders = sorted(p.name for p in PACKAGE.iterdir()
                     if p.is_dir() and (p / "__init__.py").is_file())
    assert sorted(LAYERS) == folders
    assert sorted(m for m in MODULES if "." not in m and m not in LAYERS) == [
        "__init__", "__main__"]  # no module outside a folder but the entry points
    for folder in LAYERS:
        doc = ast.get_docstring(ast.parse(MODULES[folder].read_text(encoding="utf-8")))
        assert doc and "Imports" in doc, f"tf_rnn/{folder}/__init__.py: its job and imports"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{m} imports {i}" for m in MODULES for i in imports(m)
              if layer_of(i) > layer_of(m)]
    assert upward == []


def test_there_is_no_import_cycle():
    graph = {m: set(imports(m)) for m in MODULES}
    cycles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(MODULES):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_lazy_imports_only_where_start_up_needs_them():
    lazy = [f"{m} imports {i} inside a function" for m in MODULES
            if m.split(".")[0] not in LAZY_ALLOWED for i, top in imports(m).items() if not top]
    assert lazy == []


def test_the_package_never_imports_the_experiments():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("experiments"), module
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("experiments") for a in node.names), module


def test_importing_tf_rnn_leaves_the_environment_alone():
    """Process-wide settings (TensorFlow's log level) belong to the entry points."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import os, tf_rnn; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


def test_the_entry_points_log_level_lasts_only_their_block(monkeypatch):
    from tf_rnn.base import logs  # no TensorFlow import

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv(logs.VERBOSE_ENV, raising=False)
    with logs.native_logs_filtered():
        assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "2"
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's own setting stays
    with logs.native_logs_filtered():
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


@pytest.mark.slow
def test_importing_every_module_runs_no_tensorflow_op():
    """MultiWorkerMirroredStrategy must be created before TensorFlow runs anything in
    the process, so no module may run an op (a module-level tf.constant) on import."""
    names = sorted(m for m in MODULES if m not in ("__main__", "__init__"))
    code = ("import importlib\n"
            f"for name in {names!r}: importlib.import_module('tf_rnn.' + name)\n"
            "from tensorflow.python.eager import context\n"
            "print(context.context()._context_handle is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True,
                         capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "True"
