"""The package's layers hold (docs/architecture.md): a module imports only from its own
layer or the ones below, no import cycle exists (lazy imports included), nothing imports
the CLI or the experiments, and importing tf_rnn changes no process-wide setting.

Read with `ast` alone: no TensorFlow import, so this runs in a second.
"""

import ast
import os
import subprocess
import sys

import pytest
from support import ROOT

PACKAGE = ROOT / "tf_rnn"

# Lowest first. A module may import modules of its own layer and of the layers before it.
LAYERS = [
    ("base", {"config", "model_table", "errors", "checks", "files", "jsonl", "logs",
              "draws", "plots"}),
    ("data", {"vocab", "textio", "corpora", "text8", "data"}),
    ("model", {"kernels", "cells", "charmodel", "indrnn", "stacking", "keras_cell",
               "models"}),
    ("steps", {"steps", "sampling", "scoring", "summaries", "distribute", "sequence",
               "tasks", "probes", "units"}),
    ("run", {"workdir", "preemption", "integrity", "runs", "resources", "run_state", "budget",
             "diagnostics", "report_page", "report"}),
    ("training", {"trainer", "training"}),
    ("export", {"serving", "export"}),
    ("entry", {"arguments", "cli", "__main__", "__init__"}),
]
LAYER_OF = {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}
# Where a function-level import is allowed: the CLI imports TensorFlow's users lazily so
# that `--help` and `--version` start at once. Optional dependencies (matplotlib) are
# not tf_rnn modules and are not counted here.
LAZY_ALLOWED = {"cli"}


def modules():
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def imports(module):
    """{imported tf_rnn module: is the import at module level}."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module == "tf_rnn":
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tf_rnn."):
            names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("tf_rnn.")]
        for name in names:
            found[name] = found.get(name, False) or node in tree.body
    return found


def test_every_module_has_a_layer():
    assert sorted(set(modules()) - set(LAYER_OF)) == []
    assert sorted(set(LAYER_OF) - set(modules())) == []  # the map names no module gone


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{m} ({LAYERS[LAYER_OF[m]][0]}) imports {i} ({LAYERS[LAYER_OF[i]][0]})"
              for m in modules() for i in imports(m) if LAYER_OF[i] > LAYER_OF[m]]
    assert upward == []


def test_there_is_no_import_cycle():
    graph = {m: set(imports(m)) for m in modules()}
    cycles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in modules():
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_lazy_imports_only_where_start_up_needs_them():
    lazy = [f"{m} imports {i} inside a function" for m in modules() if m not in LAZY_ALLOWED
            for i, top in imports(m).items() if not top]
    assert lazy == []


def test_the_package_never_imports_the_experiments():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("experiments"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("experiments") for a in node.names), path.name


def test_importing_tf_rnn_leaves_the_environment_alone():
    """Process-wide settings (TensorFlow's log level) belong to the entry points."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import os, tf_rnn; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


def test_the_entry_points_log_level_lasts_only_their_block(monkeypatch):
    from tf_rnn import logs  # no TensorFlow import

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
    names = [m for m in modules() if m != "__main__"]
    code = ("import importlib\n"
            f"for name in {names!r}: importlib.import_module('tf_rnn.' + name)\n"
            "from tensorflow.python.eager import context\n"
            "print(context.context()._context_handle is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True,
                         capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "True"
