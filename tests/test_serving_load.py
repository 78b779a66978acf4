"""A SavedModel export under load: 16 threads, 640 mixed requests (40 a thread), batch
sizes 1-64, every answer bitwise equal to the single-threaded one
(experiments/serve_benchmark.py, whose default is 2 000: the property is the same with
fewer, and the suite's budget is not)."""

import json
import os
import subprocess
import sys

import pytest

from experiments import serve_benchmark
from tf_rnn.base import logs


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return serve_benchmark._tiny_export(tmp_path_factory.mktemp("serve"))


def test_the_request_mix_covers_every_method_and_batch_size():
    requests = serve_benchmark.make_requests(2000, "abc ", 8, seed=0)
    methods = [m for m, _ in requests]
    assert {m: methods.count(m) for m in serve_benchmark.METHODS} == {
        "generate": 667, "score": 667, "step": 666}
    sizes = {serve_benchmark._batch(r) for r in requests}
    assert min(sizes) == 1 and max(sizes) == 64 and len(sizes) == 64
    assert len({kw["seed"] for m, kw in requests if m == "generate"}) > 600


@pytest.mark.slow
def test_16_threads_640_requests_no_error_and_every_answer_single_threaded(export_dir):
    # 640 requests (seed 0) still hold every method at batch sizes 1 and 64.
    rows = serve_benchmark.run_load(export_dir, threads=16, requests=640, seed=0)
    load = rows[0]
    assert load["kind"] == "serve_load" and load["requests"] == 640
    assert load["errors"] == 0, load.get("first_error")
    assert load["mismatches"] == 0
    assert load["batch_sizes"] == [1, 64] and load["requests_per_sec"] > 0
    assert 0 < load["p50_ms"] <= load["p99_ms"]
    assert [r["kind"] for r in rows[1:]] == [f"serve_load/{m}" for m in serve_benchmark.METHODS]
    assert all(r["errors"] == r["mismatches"] == 0 and r["batch_sizes"] == [1, 64]
               for r in rows[1:])


@pytest.mark.slow
def test_the_module_prints_one_json_row_per_line(export_dir, capsys):
    # --max-batch 2: one compilation of each signature per batch size, two sizes (the
    # rows are what this checks; the batch sizes 1-64 are the test above).
    code = serve_benchmark.main(["--export", str(export_dir), "--threads", "4",
                                 "--requests", "30", "--seed", "1", "--max-batch", "2"])
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert code == 0 and [r["kind"] for r in rows][0] == "serve_load"
    assert rows[0]["requests"] == 30 and rows[0]["threads"] == 4 and len(rows) == 4
    assert rows[0]["batch_sizes"] == [1, 2]  # --max-batch reached run_load


@pytest.mark.parametrize("errors, mismatches, status", [(0, 0, 0), (0, 1, 1), (2, 0, 1)])
def test_the_exit_status_says_whether_every_answer_held(monkeypatch, capsys, errors,
                                                        mismatches, status):
    row = {"kind": "serve_load", "errors": errors, "mismatches": mismatches}
    monkeypatch.setattr(serve_benchmark, "run_load", lambda *a: [row])
    assert serve_benchmark.main(["--export", "unused"]) == status
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [row]


@pytest.mark.slow
def test_the_real_command_prints_no_tensorflow_log_lines(export_dir):
    """Loading the export and serving it must not print TensorFlow's native log lines
    (`I0000 ... oneDNN custom operations are on`, `E0000 ... DT_INT32 ...`)."""
    env = {k: v for k, v in os.environ.items() if k not in (logs.VERBOSE_ENV,
                                                            "TF_CPP_MIN_LOG_LEVEL")}
    proc = subprocess.run([sys.executable, "-m", "experiments.serve_benchmark", "--export",
                           str(export_dir), "--threads", "2", "--requests", "12",
                           "--max-batch", "1"],  # XLA compiles (and would log) all the same
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[0])["requests"] == 12
    native = [line for line in proc.stderr.splitlines()
              if logs.is_native_log_line(line.encode()) or "oneDNN" in line]
    assert native == [] and proc.stderr.strip() == ""
