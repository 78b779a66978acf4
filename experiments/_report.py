"""How the benchmarks report: JSON rows on stdout, Markdown tables and progress on stderr,
and the process's peak resident memory."""

import math
import sys

from tf_rnn.base import jsonl


class Report:
    """Collects rows: one JSON line each on stdout, the table and progress on stderr."""

    def __init__(self):
        self.rows = {}

    def log(self, text):
        print(text, file=sys.stderr, flush=True)

    def add(self, name, chars_per_sec, **fields):
        row = {"name": name, **round_figures({"chars_per_sec": chars_per_sec, **fields})}
        self.rows[name] = row
        print(jsonl.dumps(row), flush=True)
        return row

    def table(self):
        """Markdown: one table per kind of row (train, eval, ...), a column per figure
        (a row's lists and its `command` in its JSON line only)."""
        groups = {}
        for row in self.rows.values():
            groups.setdefault(row["name"].split("/")[0], []).append(row)
        out = []
        for rows in groups.values():
            keys = [k for k in dict.fromkeys(k for r in rows for k in r)  # lists: JSON only
                    if k not in ("name", "chars_per_sec", "command") and
                    not any(isinstance(r.get(k), list) for r in rows)]
            out += ["| row | chars/s | " + " | ".join(keys) + " |",
                    "|---|---:|" + "---:|" * len(keys)]
            out += [f"| {r['name']} | {_fmt(r['chars_per_sec'])} | " +
                    " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
            out.append("")
        return "\n".join(out)


def round_figures(figures):
    """{key: value} for a JSON row: a float value keeps 4 significant digits (whole from
    1000 up), a non-finite one becomes None (JSON has no NaN); other values, lists and
    dicts included, stay as they are."""
    return {key: _round(value) for key, value in figures.items()}


def _round(value):
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # JSON has no NaN: a figure that could not be measured
        return float(f"{value:.4g}") if abs(value) < 1000 else round(value)
    return value


def _fmt(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def peak_rss_tracker():
    """(reset() -> current MB, peak_mb()) for this process's resident memory (Linux /proc;
    None elsewhere). reset() sets the high-water mark to the current size."""

    def status(key):
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) / 1024  # kB -> MB
        except OSError:
            return None

    def reset():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # 5: reset the peak resident set size to the current one
            return status("VmRSS:")
        except OSError:
            return None

    return reset, lambda: status("VmHWM:")
