"""Pictures a student can read (tf_rnn.inspect.plots, the experiments' --plot) and TensorBoard
summaries that say what they are (tf_rnn.engine.summaries)."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

matplotlib = pytest.importorskip("matplotlib")
from matplotlib import image as mpimg  # noqa: E402
from matplotlib import mathtext  # noqa: E402

from experiments import hello, xor_elman  # noqa: E402
from tf_rnn.base import config as config_lib  # noqa: E402
from tf_rnn.inspect import diagnostics, plots  # noqa: E402
from tf_rnn.engine import summaries
from tf_rnn.inspect import probes


def _png_size(path):
    height, width = mpimg.imread(path).shape[:2]
    return width, height


@pytest.fixture
def arch1_figures():
    """Figures like an Arch 1 concat measurement: n = 5 recurrent units of a 2n = 10
    state (activity measured by `probes.activity` on a made-up window)."""
    hidden = np.random.default_rng(0).uniform(-1, 1, (8, 4, 10))  # (T, B, 2n)
    return {"grad_by_lag": list(np.geomspace(1e-2, 1e-5, 8)),
            "grad_by_lag_last": list(np.geomspace(1e-2, 1e-9, 8)),
            **probes.activity(hidden, "relu", recurrent=slice(5, 10)),
            "activation": "relu", "recurrent_units": "[5:10)"}


# --- the diagnostics picture (tf-rnn diagnose --plot, init_diagnostics --plot) -------


def test_diagnostics_figure_labels_units_and_zeros(tmp_path, arch1_figures):
    other = dict(arch1_figures, recurrent_unit_rate=[0.0] * 5, recurrent_dead_fraction=1.0)
    runs = {"seed": other, "glorot": arch1_figures}
    assert len(runs["seed"]["unit_rate"]) == 10  # premise: the state has 2n units
    fig = plots.make_diagnostics_figure(runs, title="t")
    whole, last, hist = fig.axes[:3]
    for ax in (whole, last):
        label = ax.get_ylabel()
        assert label.startswith("$") and label.endswith("$") and r"\partial" in label
        mathtext.MathTextParser("agg").parse(label)  # real mathtext, not a raw string
        # One curve per run, each its own colour.
        colors = {line.get_color() for line in ax.get_lines() if line.get_label() in runs}
        assert len(colors) == 2
    # The histogram counts the n recurrent units the legend speaks of, not all 2n.
    heights = [sum(p.get_height() for p in bars) for bars in hist.containers]
    assert heights == [5, 5]
    assert all("recurrent units dead" in t.get_text() for t in hist.get_legend().get_texts())
    assert "[5:10)" in hist.get_ylabel()
    matplotlib.pyplot.close(fig)
    # A profile that is exactly 0 past lag 1 still shows, as marks on the axis floor.
    zeros = dict(arch1_figures, grad_by_lag_last=[0.5, 0.1] + [0.0] * 6)
    fig = plots.make_diagnostics_figure({"dead": zeros})
    floor = [line for line in fig.axes[1].get_lines() if "exactly 0" in line.get_label()]
    assert len(floor) == 1 and len(floor[0].get_xdata()) == 6
    matplotlib.pyplot.close(fig)
    path = plots.diagnostics_figure(tmp_path / "d.png", runs)
    assert _png_size(path)[0] >= 1000


def test_model_label_names_the_model_from_its_config():
    label = diagnostics.model_label(config_lib.Config(model="arch1", combine="mul",
                                                      activation="tanh", init="glorot"))
    assert label == "arch1 mul, tanh, init glorot"
    assert diagnostics.model_label(config_lib.Config(model="arch2", init="seed")) == \
        "arch2 (output feedback, tanh), init seed"


# --- xor_elman --plot -----------------------------------------------------------------


def test_sweep_figure_one_panel_per_weight_one_legend_entry_per_seed(tmp_path):
    offsets = np.linspace(-1, 1, 5)
    sweeps = {f"seed {k}": {(i, j): offsets ** 2 + k for i in range(4) for j in range(4)}
              for k in (0, 6)}
    fig = plots.make_sweep_figure(offsets, sweeps, title="Temporal XOR (--seed 21)")
    assert len(fig.axes) == 16
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["seed 0", "seed 6", "trained value (offset 0)"]
    assert "--seed 21" in fig.get_suptitle()
    # The two seeds' curves differ in colour in every panel.
    assert all(len({line.get_color() for line in ax.get_lines()[:-1]}) == 2
               for ax in fig.axes)
    matplotlib.pyplot.close(fig)
    small = {k: {ij: c for ij, c in v.items() if max(ij) < 2} for k, v in sweeps.items()}
    width, _ = _png_size(plots.sweep_figure(tmp_path / "s.png", offsets, small))
    assert width >= 1000


def test_xor_sweeps_the_first_converged_and_the_first_failed_seed():
    assert xor_elman.sweep_seeds([True, False, True, False]) == [0, 1]
    assert xor_elman.sweep_seeds([False, False, True]) == [2, 0]
    assert xor_elman.sweep_seeds([True, True]) == [0]
    args = xor_elman.parse_args(["--seed", "21", "--seeds", "4", "--sweep-seeds", "3,1"])
    assert args.sweep_seeds == [3, 1]
    title = xor_elman.sweep_title(args, np.array([True, True, False, True]), [3, 1])
    assert "--seed 21" in title and "3/4 converged" in title and "seeds 3, 1" in title
    with pytest.raises(SystemExit):
        xor_elman.parse_args(["--seeds", "4", "--sweep-seeds", "4"])


# --- hello, binary_addition --plot ----------------------------------------------------


def test_curves_figure_tells_twenty_curves_apart():
    curves = {f"seed {k}": np.arange(3.0) + k for k in range(20)}
    fig = plots.make_curves_figure(np.arange(3), curves, "step", "loss")
    ax = fig.axes[0]
    looks = {(line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len(looks) == 20
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(curves)
    matplotlib.pyplot.close(fig)


def test_hello_figure_shows_each_seeds_loss_and_predictions():
    right = np.array([[0.9, 0.8, 0.5, 0.5], [1.0, 1.0, 0.99, 0.98]])
    fig = plots.make_hello_figure(np.arange(1, 4), {"seed 0": [1, 0.5, 0.4],
                                                    "seed 1": [1, 0.1, 0.01]}, right,
                                  ["h→e", "e→l", "l→l", "l→o"],
                                  ["seed 0: 'hell' ✗", "seed 1: 'hello' ✓"], title="x")
    curve, grid = fig.axes[:2]
    assert [t.get_text() for t in curve.get_legend().get_texts()] == ["seed 0", "seed 1"]
    np.testing.assert_array_equal(grid.get_images()[0].get_array(), right)
    assert [t.get_text() for t in grid.get_xticklabels()] == ["h→e", "e→l", "l→l", "l→o"]
    matplotlib.pyplot.close(fig)


def test_hello_plot_needs_the_extra_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the `plot` extra not installed
    code = hello.main(["--seeds", "1", "--steps", "1", "--workdir", str(tmp_path / "run"),
                       "--no-progress", "--plot", str(tmp_path / "h.png")])
    err = capsys.readouterr().err
    assert code == 2 and "`plot` extra" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


# --- TensorBoard ----------------------------------------------------------------------


def _metadata(events_dir):
    """{tag: summary_description} of the first event of each tag."""
    out = {}
    for path in sorted(events_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag not in out:
                    out[value.tag] = value.metadata.summary_description
    return out


def test_pending_summaries_write_each_tags_description(tmp_path):
    pending = summaries.PendingSummaries()
    pending.scalar("train/bpc", 2.0, 1)
    pending.scalar("diag/grad_norm/W", 0.5, 1)
    pending.text("samples/text", "abc", 1)
    pending.profile("diag/grad_by_lag", [1.0, 0.5], 1)
    pending.histogram("weights/W", np.ones(3), 1)
    writer = tf.summary.create_file_writer(str(tmp_path))
    pending.write(writer)
    got = _metadata(tmp_path)
    assert set(got) == {"train/bpc", "diag/grad_norm/W", "samples/text",
                        "diag/grad_by_lag", "weights/W"}
    assert got == {tag: summaries.describe(tag) for tag in got}
    assert all(got.values())  # none empty
    assert "log10" in summaries.describe("diag/grad_by_lag/lag_005")
    assert summaries.describe("no/such/tag") == ""
    # Later events of a tag carry no description (TensorBoard reads the first one's):
    # written every time, it made the event files 4x larger.
    pending.scalar("train/bpc", 1.5, 2)
    pending.write(writer)
    later = [value.metadata.summary_description
             for path in sorted(tmp_path.glob("events.out.tfevents.*"))
             for event in tf.compat.v1.train.summary_iterator(str(path))
             for value in event.summary.value if value.tag == "train/bpc"]
    assert later == [summaries.describe("train/bpc"), ""]


def test_diag_write_logs_the_profile_as_log10_scalars_per_lag(arch1_figures):
    figures = dict(arch1_figures, grad_norms={"W": 0.5})
    figures["grad_by_lag"] = np.array([1.0, 1e-3, 1e-6, 0.0, 0, 0, 0, 2e-9])
    pending = summaries.PendingSummaries()
    model = SimpleNamespace(trainable_variables=[])
    diagnostics.write(pending, figures, model, 3)
    lags = {tag: value for _, tag, value, _ in pending._items
            if tag.startswith("diag/grad_by_lag/lag_")}
    assert lags == {"diag/grad_by_lag/lag_000": 0.0, "diag/grad_by_lag/lag_001": -3.0,
                    "diag/grad_by_lag/lag_002": pytest.approx(-6.0),
                    "diag/grad_by_lag/lag_005": diagnostics.LOG10_ZERO,
                    "diag/grad_by_lag/lag_007": pytest.approx(np.log10(2e-9))}
