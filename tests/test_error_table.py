"""The troubleshooting page's table of error messages, checked against the real errors.

Each row of the table (docs/troubleshooting.md, "## Error messages") names a situation and quotes the
message `tf-rnn: error: ...` it gets. Here every row's situation is made for real, on
small data in a temporary directory, and every message quoted in the row must match a
message the code printed. In a quoted message the placeholders PATH, OTHER, WORKDIR,
CACHE, URL and N, a size (`27.3 kB`), a process id, and `...` stand for anything; the
rest is literal. A row without a producer here fails, and so does a producer whose row
is gone: a new row gets its producer, a changed message gets the table fixed.
"""

import json
import re
import shutil
import socket
import subprocess
import sys
import zipfile

import pytest
from hooked_cli import DRIVER  # tests/ is on sys.path under pytest (no __init__.py)

from support import ROOT, subprocess_env, tiny, words
from tf_rnn import cli
from tf_rnn.base import config as config_lib
from tf_rnn.train import training

TABLE_FILE = ROOT / "docs" / "troubleshooting.md"  # where the table lives
TABLE_HEADING = "## Error messages"
PREFIX = "tf-rnn: error: "

TINY = tiny()


# Reading the table ----------------------------------------------------------------------

CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")


def split_row(line):
    """The cells of a Markdown table row; a `|` inside a code span is no separator."""
    cells, cell, i = [], "", 0
    line = line.strip().strip("|")
    while i < len(line):
        span = CODE_SPAN.match(line, i)
        if span:
            cell, i = cell + span.group(0), span.end()
        elif line[i] == "|":
            cells, cell, i = cells + [cell.strip()], "", i + 1
        else:
            cell, i = cell + line[i], i + 1
    return cells + [cell.strip()]


def code_spans(cell):
    """The text of each code span of `cell` (CommonMark: one space stripped each side)."""
    texts = []
    for span in CODE_SPAN.finditer(cell):
        text = span.group(2)
        if len(text) > 2 and text[0] == text[-1] == " " and text.strip():
            text = text[1:-1]
        texts.append(text)
    return texts


def read_table(path=TABLE_FILE, heading=TABLE_HEADING):
    """[(situation, [quoted messages])] of the table that follows `heading`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append(split_row(line))
        elif rows:
            break  # the table has ended
    header, separator, *body = rows
    assert header[:2] == ["situation", "message (after `tf-rnn: error: `)"], header
    assert set("".join(separator)) <= set("-: "), separator
    return [(cells[0], code_spans(cells[1])) for cells in body]


# A placeholder, a size or a process id: what varies from one run or machine to another.
VARIES = re.compile(r"\.\.\.|\b(?:PATH|OTHER|WORKDIR|CACHE|URL|N)\b"
                    r"|\d[\d.,]*(?= (?:bytes|kB|MB|GB|KiB|MiB|GiB)\b)"
                    r"|(?<=process )\d+|(?<=kill -TERM )\d+")


def message_pattern(quoted):
    """The regex of a quoted message: its varying parts match anything, the rest itself."""
    pattern, end = "", 0
    for part in VARIES.finditer(quoted):
        pattern += re.escape(quoted[end:part.start()])
        pattern += r"[\d.,]+" if part.group(0)[0].isdigit() else ".+?"
        end = part.end()
    return re.compile(pattern + re.escape(quoted[end:]), re.DOTALL)


ROWS = read_table()


# Making each situation -------------------------------------------------------------------

def _train(workdir, corpus, *extra):
    code = cli.main(["train", "--data", str(corpus), "--workdir", str(workdir), "--steps",
                     "10", *TINY, *extra])
    assert code == 0
    return workdir


@pytest.fixture(scope="module")
def text8_run(tmp_path_factory, files):
    """A run of 10 steps on a corpus of its own (checkpoints ckpt-0 and ckpt-10)."""
    d = tmp_path_factory.mktemp("text8_run")
    shutil.copy(files / "corpus.txt", d / "corpus.txt")
    return _train(d / "run", d / "corpus.txt")


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, files):
    """A `vocab=corpus` run of 10 steps."""
    return _train(tmp_path_factory.mktemp("corpus_run") / "run", files / "corpus.txt",
                  "--set", "vocab=corpus")


class Situation:
    """What a producer works with: a temporary directory, the shared files and runs, and
    the CLI run in-process, each failure returning its one error line."""

    def __init__(self, tmp_path, capsys, request):
        self.tmp, self._capsys, self._request = tmp_path, capsys, request

    def fixture(self, name):
        return self._request.getfixturevalue(name)

    @property
    def files(self):
        return self.fixture("files")

    def run(self, name="text8_run"):
        """A copy of a shared run (`text8_run` or `corpus_run`): producers may damage it."""
        original = self.fixture(name)
        copy = self.tmp / f"copy-{len(list(self.tmp.glob('copy-*')))}"
        shutil.copytree(original, copy)
        return copy

    def cli(self, *argv):
        return self.report(cli.main, [str(a) for a in argv])

    def report(self, fn, *args):
        """Runs `fn(*args)` (cli.main, or cli.run_and_report of a library call): asserts
        exit 2 and one error line, returns the message after the prefix."""
        code = fn(*args)
        _, err = self._capsys.readouterr()
        lines = [line for line in err.splitlines() if line.startswith("tf-rnn:")]
        assert code == 2 and len(lines) == 1 and lines[0].startswith(PREFIX), err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        return lines[0][len(PREFIX):]

    def library(self, call):
        """The error line of a library call made through the CLI's error reporting."""
        return self.report(cli.run_and_report, lambda args: call(), None)


def _new(s):
    return ["--workdir", s.tmp / "new", *TINY]


def _bad_file(name):
    return lambda s: [s.cli("train", "--data", s.files / name, *_new(s))]


def _zips(s):
    return [s.cli("train", "--data", s.files / name, *_new(s))
            for name in ("none.zip", "two.zip")]


def _unknown_when_resuming(s):
    return [s.cli("train", "--data", s.files / "capitals.txt", "--workdir", s.run(),
                  "--steps", 20, "--no-progress", "--allow-new-corpus")]


def _text8_download(s, **change):
    """Training on text8 with its download from `change["url"]` (a cache of our own)."""
    config = config_lib.get_preset("text8_arch1")
    fetch = {"url": change.pop("url"), **change}
    return s.library(lambda: training.train(config, s.tmp / "w", None,
                                            cache_dir=s.tmp / "cache",
                                            download_kwargs=fetch, progress=False))


def _offline(s):
    # A bound port that does not listen: connecting is refused, as from a machine offline.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/text8.zip"
        return [_text8_download(s, url=url)]


def _wrong_download(s):
    served = s.tmp / "served.zip"
    with zipfile.ZipFile(served, "w") as zf:
        zf.writestr("text8", words(5000))
    url = served.as_uri()
    return [_text8_download(s, url=url),  # text8's size and digest expected
            _text8_download(s, url=url, expected_size=served.stat().st_size)]


def _corpus_moved(s):
    run = s.run()
    corpus = s.fixture("text8_run").parent / "corpus.txt"  # the one its run.json names
    moved = corpus.with_name("moved.txt")
    corpus.rename(moved)
    try:
        return [s.cli("eval", "--workdir", run)]
    finally:
        moved.rename(corpus)


def _other_corpus(s):
    return [s.cli("train", "--workdir", s.run(), "--data", s.files / "other.txt",
                  "--steps", 20)]


def _too_large(s):
    return [s.cli("train", "--data", s.files / "corpus.txt", "--workdir", s.tmp / "new",
                  "--set", "num_nodes=100000")]


def _out_of_memory(s):
    import tensorflow as tf

    return [s.library(lambda: tf.zeros([2 ** 40]))]  # 4 TiB: a real allocation failure


def _steps_below(s):
    return [s.cli("train", "--workdir", s.run(), "--steps", 5)]


def _sample_settings(s):
    run = s.run()
    return [s.cli("sample", "--workdir", run, *flags)
            for flags in (["--temperature", "nan"], ["--top-k", -3], ["--length", 0])]


def _out_with_streams(s):
    return [s.cli("sample", "--workdir", s.run(), "--out", s.tmp / "sample.txt",
                  "--num-streams", 2)]


def _set(*assignments, preset="text8_arch1"):
    def produce(s):
        flags = [a for assignment in assignments for a in ("--set", assignment)]
        return [s.cli("train", "--data", s.files / "corpus.txt", *_new(s), "--preset",
                      preset, *flags)]
    return produce


def _preset(s):
    return [s.cli("train", "--data", s.files / "corpus.txt", *_new(s), "--preset", "text9")]


def _positive(s):
    return [*_set("batch_size=0")(s), *_set("num_nodes=-3")(s),
            s.cli("train", "--data", s.files / "corpus.txt", *_new(s), "--steps", 0)]


def _config_conflict(s):
    return [s.cli("train", "--data", s.files / "corpus.txt", "--workdir", s.run(),
                  "--steps", 20, "--no-progress", "--preset", "text8_arch2")]


def _vocab_conflict(s):
    return [s.cli("train", "--data", s.files / name, "--workdir", s.run("corpus_run"),
                  "--steps", 20, "--no-progress", "--allow-new-corpus")
            for name in ("zebra.txt", "no_y.txt")]


def _no_checkpoint_loads(s):
    run = s.run()
    for data_file in (run / "checkpoints").glob("*.data-*"):
        data_file.write_bytes(b"")
    return [s.cli("train", "--workdir", run, "--steps", 20, "--no-progress")]


def _empty_workdir(s):
    untrained = s.tmp / "untrained"
    untrained.mkdir()
    run = s.run()
    for name in ("config.json", "vocab.json"):
        shutil.copy(run / name, untrained / name)
    return [s.cli(command, "--workdir", workdir) for workdir in (s.tmp / "none", untrained)
            for command in ("eval", "sample")]


def _prime(s):
    return [s.cli("sample", "--workdir", s.run(), "--prime", "The cat!")]


def _diverged(s):
    return [s.cli("train", "--data", s.files / "corpus.txt", "--workdir", s.tmp / "w",
                  "--steps", 30, *TINY, "--set", "learning_rate=1e30", "--set",
                  "decay_rate=1", "--set", "optimizer=sgd", "--set", "max_recoveries=2",
                  "--set", "log_every=1")]


HOLD_LOCK = ("import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
             "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(300)\n")


def _locked(s):
    run = s.run()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"  # another process holds the flock
        return [s.cli("train", "--workdir", run, "--steps", 20, "--no-progress")]
    finally:
        holder.kill()
        holder.communicate()


def _write_failed(s):
    """A real RLIMIT_FSIZE in a fresh process (tests/hooked_cli.py) resuming a bigger run:
    its next checkpoint is larger than the limit, the events written before it are not."""
    run = _train(s.tmp / "run", s.files / "corpus.txt", "--set", "num_nodes=64")  # ~170 kB
    env = subprocess_env(TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", DRIVER, "limit", "20000", "unused", "train",
                           "--workdir", str(run), "--steps", "20", "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("tf-rnn:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    return [lines[0][len(PREFIX):]]


def _edited_json(s):
    run = s.run()
    (run / "config.json").write_text("[16, 4]", encoding="utf-8")
    messages = [s.cli("eval", "--workdir", run)]
    run = s.run()
    (run / "run.json").write_text('{"data": 5}', encoding="utf-8")
    return messages + [s.cli("eval", "--workdir", run)]


def _does_not_fit(s):
    run = s.run()
    vocab = json.loads((run / "vocab.json").read_text(encoding="utf-8"))
    (run / "vocab.json").write_text(json.dumps({"chars": vocab["chars"][:-1]}),
                                    encoding="utf-8")
    return [s.cli("eval", "--workdir", run)]


# Table row (its situation cell, verbatim) -> the function making it, returning the
# messages printed. Each message quoted in the row must match one of them.
PRODUCERS = {
    "`--data` does not exist": _bad_file("missing.txt"),
    "empty file": _bad_file("empty.txt"),
    "not UTF-8": _bad_file("latin1.txt"),
    "zip with no file / several": _zips,
    "corpus shorter than one window": _bad_file("short.txt"),
    "characters outside text8's alphabet": _bad_file("capitals.txt"),
    "... when resuming a run on other text (`--allow-new-corpus`)": _unknown_when_resuming,
    "text8 cannot be downloaded (offline)": _offline,
    "`eval` on a run whose corpus moved": _corpus_moved,
    "`train --data OTHER` on a run trained on another corpus": _other_corpus,
    "a model too large for the machine": _too_large,
    "memory ran out anyway (a GPU, or the estimate was low)": _out_of_memory,
    "`--steps` below the run's step": _steps_below,
    "`sample --temperature nan`, `--top-k -3`, `--length 0` with no prime": _sample_settings,
    "`sample --out FILE` with `--num-streams` above 1": _out_with_streams,
    "text8 download of the wrong size / digest": _wrong_download,
    "unknown preset": _preset,
    "`--set` unknown key": _set("batchsize=4"),
    "`--set` without `=`": lambda s: [s.cli("train", "--data", s.files / "corpus.txt",
                                            *_new(s), "--set", "batch_size")],
    "`--set` wrong type": _set("batch_size=four"),
    "`--set` zero or negative size, `--steps 0`": _positive,
    "`--set` negative learning rate": _set("learning_rate=-0.1"),
    "`--set` a field the model (or init, optimizer) ignores":
        _set("combine=mul", preset="text8_arch2"),
    "`--set init=irnn` on Arch 2": _set("init=irnn", preset="text8_arch2"),
    "work directory's config conflicts": _config_conflict,
    "work directory's vocabulary conflicts (`vocab=corpus` run, other text with "
    "`--allow-new-corpus`)": _vocab_conflict,
    "no checkpoint loads": _no_checkpoint_loads,
    "`eval` / `sample` on an empty work directory": _empty_workdir,
    "`--prime` with unknown characters": _prime,
    "the divergence guard gave up": _diverged,
    "another process trains in the work directory": _locked,
    "a write failed (disk full, size limit)": _write_failed,
    "`config.json` / `run.json` edited badly": _edited_json,
    "`vocab.json` / `config.json` do not fit the checkpoint": _does_not_fit,
}

# Rows whose situation takes seconds of its own.
SLOW = {"a write failed (disk full, size limit)",
        # TensorFlow's CPU allocator retries a failed allocation for 10 s before it gives up.
        "memory ran out anyway (a GPU, or the estimate was low)"}


def check_row(situation, quoted, tmp_path, capsys, request):
    produce = PRODUCERS.get(situation)
    if produce is None:
        pytest.fail(f"table row {situation!r} has no producer in {__name__}.PRODUCERS: "
                    f"add the code that makes it, so its message is checked")
    assert quoted, f"table row {situation!r} quotes no message"
    real = produce(Situation(tmp_path, capsys, request))
    for text in quoted:
        if not any(message_pattern(text).fullmatch(message) for message in real):
            pytest.fail(f"table row {situation!r}: the quoted message\n  {text}\nmatches "
                        f"none of the real ones:\n  " + "\n  ".join(real))


def _params(slow):
    return [pytest.param(situation, quoted, id=situation) for situation, quoted in ROWS
            if (situation in SLOW) == slow]


@pytest.mark.parametrize("situation,quoted", _params(slow=False))
def test_the_quoted_message_is_the_real_one(situation, quoted, tmp_path, capsys, request):
    check_row(situation, quoted, tmp_path, capsys, request)


@pytest.mark.slow
@pytest.mark.parametrize("situation,quoted", _params(slow=True))
def test_the_quoted_message_is_the_real_one_slow(situation, quoted, tmp_path, capsys,
                                                 request):
    check_row(situation, quoted, tmp_path, capsys, request)


def test_every_producer_has_its_row():
    situations = [situation for situation, _ in ROWS]
    assert len(situations) == len(set(situations)), "two table rows share a situation"
    gone = sorted(set(PRODUCERS) - set(situations))
    assert not gone, f"producers of rows no longer in {TABLE_FILE.name}: {gone}"
    assert SLOW <= set(PRODUCERS)


def test_the_patterns_are_literal_but_for_what_varies():
    pattern = message_pattern("text file PATH is empty (needs about 27.3 kB, process 42) ...")
    assert pattern.fullmatch("text file /a/b.txt is empty (needs about 1,024 kB, process 7) x")
    assert not pattern.fullmatch("text file /a/b.txt is empty (needs about 1 kB, pid 7) x")
    assert not pattern.fullmatch("text file /a/b.txt is Empty (needs about 1 kB, process 7)")
    assert message_pattern("a (b) [c].").fullmatch("a (b) [c].")
    assert not message_pattern("a (b) [c].").fullmatch("a (b) [c]x")
    assert split_row("| a `x | y` | ``b `c` d`` | e |") == ["a `x | y`", "``b `c` d``", "e"]
    assert code_spans("``b `c` d`` / `e`") == ["b `c` d", "e"]
