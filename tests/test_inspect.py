"""`tf-rnn inspect` (tf_rnn.inspect.report, tf_rnn.inspect.units): the per-unit numbers, the page for
every model, its BPC equal to `tf-rnn score`'s, the same bytes for the same inputs, and
the page as a person sees it, in a real headless Chromium: the characters, the
probabilities, a unit's values and the ranking the script drew are Python's, the text
is escaped, and a screenshot is not blank.

Without a browser (Debian's `chromium`; `.ci/run` installs it) the browser tests skip,
saying why.
"""

import html.parser
import json
import re
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
import tensorflow as tf
from support import run_cli, tiny, words

from tf_rnn import models
from tf_rnn.base import config as config_lib
from tf_rnn.data.vocab import Vocabulary
from tf_rnn.engine import scoring
from tf_rnn.inspect import report, units
from tf_rnn.toys import sequence

VOCAB = Vocabulary.text8()


# The numbers (no TensorFlow run) -------------------------------------------------------

def test_text_features_by_hand():
    f = units.text_features('ab "c" (d)\ne. f')
    nan = np.nan
    np.testing.assert_array_equal(f["position_in_word"],
                                  [1, 2, nan, nan, 1, nan, nan, nan, 1, nan, nan, 1, nan,
                                   nan, 1])
    np.testing.assert_array_equal(f["inside_quotes"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0,
                                                       0, 0, 0])
    np.testing.assert_array_equal(f["inside_brackets"], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0,
                                                         0, 0, 0, 0])
    np.testing.assert_array_equal(f["since_space"], [nan, nan, 0, 1, 2, 3, 0, 1, 2, 3, 4,
                                                     5, 6, 0, 1])
    np.testing.assert_array_equal(f["since_newline"], [nan] * 10 + [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(f["since_sentence_end"], [nan] * 12 + [0, 1, 2])
    np.testing.assert_array_equal(f["vowel"], [1, 0, nan, nan, 0, nan, nan, nan, 0, nan,
                                               nan, 1, nan, nan, 0])


def test_correlations_are_pearsons_and_the_ranking_orders_by_size():
    rng = np.random.default_rng(0)
    feature = rng.normal(size=200)
    feature[::7] = np.nan  # undefined there: left out
    hidden = rng.normal(size=(200, 4))
    hidden[:, 1] += 3 * np.nan_to_num(feature)  # tracks it
    hidden[:, 2] -= 1 * np.nan_to_num(feature)  # tracks it less, negatively
    hidden[:, 3] = 0.5  # does not vary
    r = units.correlations(hidden, {"f": feature, "flat": np.ones(200)})
    keep = np.isfinite(feature)
    for u in range(3):
        assert r["f"][u] == pytest.approx(np.corrcoef(hidden[keep, u], feature[keep])[0, 1])
    assert np.isnan(r["f"][3]) and np.isnan(r["flat"]).all()
    ranks = units.ranking(r, top=2)
    assert [u for u, _ in ranks["f"]] == [1, 2] and ranks["f"][1][1] < -0.5
    assert ranks["flat"] == []
    assert units.best_unit(ranks) == (1, "f", ranks["f"][0][1])


def test_the_data_cannot_end_its_script_element():
    text = report._json_for_script({"t": "</script><b>&amp;'\"\n\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"t": "</script><b>&amp;'\"\n\u2028"}


def test_layers_of_stacked_and_split_models():
    build = lambda **kw: models.build_model(config_lib.Config(num_nodes=4, **kw), 27)  # noqa
    assert [(n, p.start, p.stop) for n, p in units.layers_of(build())] == [
        ("input-only [0:4)", 0, 4), ("recurrent [4:8)", 4, 8)]  # arch1 concat: q | r
    assert [(n, p.start, p.stop) for n, p in units.layers_of(
        build(model="elman", num_layers=3))] == [
        ("layer 1", 0, 4), ("layer 2", 4, 8), ("layer 3", 8, 12)]
    assert [n for n, _ in units.layers_of(build(model="arch2"))] == ["all"]


def test_each_activation_is_split_in_the_middle_of_its_range():
    """The value where a unit's colour turns from blue to red (the page's and its
    legend's `act_split`): the middle of tanh's and sigmoid's ranges, relu's 0."""
    hidden = np.array([[0.0, 3.0], [1.5, 0.5]])
    assert report.colour_scale("tanh", hidden) == (-1.0, 0.0, 1.0)
    assert report.colour_scale("sigmoid", hidden) == (0.0, 0.5, 1.0)
    assert report.colour_scale("relu", hidden) == (0.0, 0.0, 3.0)
    assert report.unit_values(hidden, "sigmoid")["act_split"] == 0.5
    with pytest.raises(ValueError, match="`activation`.*'gelu'"):
        report.colour_scale("gelu", hidden)


# Every model ----------------------------------------------------------------------------

MODELS = {
    "arch1_concat": dict(),
    "arch1_sum": dict(combine="sum", activation="tanh"),
    "arch1_mul": dict(combine="mul", activation="tanh"),
    "arch1_sum_stacked": dict(combine="sum", activation="tanh", num_layers=2),
    "arch1_mul_stacked": dict(combine="mul", activation="tanh", num_layers=2, residual=True),
    "arch2": dict(model="arch2"),
    "elman": dict(model="elman"),
    "elman_stacked": dict(model="elman", num_layers=2),
    "indrnn": dict(model="indrnn"),
    "indrnn_stacked": dict(model="indrnn", num_layers=2, residual=True),
}


def spread_model(seed=0, **fields):
    """An untrained model with weights N(0, 0.3²): units that vary, characters that
    score differently."""
    model = models.build_model(config_lib.Config(num_nodes=6, init="glorot", **fields),
                               VOCAB.size)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.3, weight.shape).astype(weight.dtype))
    return model


def page_data(page):
    """The JSON data block of a report page."""
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', page,
                      re.S).group(1)
    return json.loads(block)


def unpack(figures):
    """The page's packed arrays back as NumPy: probabilities (N,), unit values (H, M)."""
    import base64

    p = 2.0 ** -np.frombuffer(base64.b64decode(figures["bits"]), "<f4").astype(float)
    lo, hi = figures["act_range"]
    act = np.frombuffer(base64.b64decode(figures["act"]), "u1").reshape(
        figures["units"], figures["unit_chars"])
    return p, lo + act * (hi - lo) / 255


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_gets_its_page(name):
    model = spread_model(**MODELS[name])
    text = words(150, seed=1)[:100]  # four compiled windows of units.hidden_states
    ids = VOCAB.encode(text)
    page, figures = report.render(model, ids, VOCAB.chars, num_unrollings=10)
    assert page_data(page) == json.loads(json.dumps(figures, sort_keys=True))
    hidden, logits, _ = units.hidden_states(model, ids)  # the probe protocol's unroll
    # The model's own fast path predicts what the unroll's readout does.
    fast, _ = model(ids[None], model.zero_state(1))
    np.testing.assert_allclose(logits, fast[0], rtol=1e-4, atol=1e-4)
    assert figures["units"] == model.hidden_size == hidden.shape[1]
    assert len(figures["layers"]) == (getattr(model, "num_layers", 1) if name != "arch1_concat"
                                      else 2)
    p, values = unpack(figures)
    lo, hi = figures["act_range"]
    np.testing.assert_allclose(values, hidden.T, atol=(hi - lo) / 255 / 2 + 1e-6)
    log_p = tf.nn.log_softmax(fast[0]).numpy().astype(np.float64)
    want = log_p[np.arange(len(ids) - 1), ids[1:]] / np.log(2)  # log2 p
    np.testing.assert_allclose(np.log2(p[1:]), want, rtol=1e-4, atol=1e-4)
    assert figures["bpc"] == pytest.approx(-want.mean(), rel=1e-5)
    assert figures["best"] is not None and len(figures["profile"]["grad_by_lag"]) == 10
    rate = np.array(figures["unit_rate"])  # the diagnostics' definitions, per unit
    on = hidden > 0 if model.activation == "relu" else np.abs(hidden) > 0.99
    np.testing.assert_allclose(rate, on.mean(axis=0), atol=5e-5)
    assert (hidden.std(axis=0) > 0).mean() > 0.5  # premise: most units vary on the text


@pytest.mark.slow
def test_a_toy_model_reading_one_hot_inputs():
    """The "hello" network (tf_rnn.toys.sequence): one member, one-hot symbols in; its
    probabilities are its readout's softmax."""
    vocab = Vocabulary("helo")
    model = sequence.ElmanSequenceModel(4, 10, 4, "sigmoid", members=3).member(1)
    ids = vocab.encode("hellohello")
    one_hot = np.eye(4, dtype=np.float32)[ids]
    page, figures = report.render(model, ids, vocab.chars, inputs=one_hot, num_unrollings=4)
    logits, _ = model(one_hot[None, :-1], model.zero_state(1))
    log_p = tf.nn.log_softmax(logits[0]).numpy().astype(np.float64)
    want = np.exp(log_p[np.arange(len(ids) - 1), ids[1:]])
    p, values = unpack(figures)
    np.testing.assert_allclose(p[1:], want, rtol=1e-4)
    assert figures["units"] == 10 and figures["rate_name"] == "saturated"
    assert figures["act_range"] == [0.0, 1.0] and values.shape == (10, len(ids))
    with pytest.raises(ValueError, match="one member"):  # 3 members: 12 outputs
        report.render(sequence.ElmanSequenceModel(4, 10, 4, members=3), ids, vocab.chars,
                      inputs=one_hot)


# The command, on a trained run ----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """A tiny run trained 30 steps (the CLI, in this process) and a text to inspect."""
    from tf_rnn import cli

    root = tmp_path_factory.mktemp("inspect")
    assert cli.main(["train", "--data", str(corpus), "--workdir", str(root / "run"),
                     "--steps", "30", *tiny()]) == 0
    text = root / "text.txt"
    text.write_text(words(500, seed=4), encoding="utf-8")
    return root


@pytest.mark.slow
def test_cli_inspect_bpc_is_scores_and_the_bytes_repeat(trained, capsys, tmp_path):
    run, text = trained / "run", trained / "text.txt"
    code, got, err = run_cli(capsys, "inspect", "--workdir", run, "--file", text,
                             "--chars", 300, "--out", tmp_path / "a.html")
    assert code == 0, err
    assert got["checkpoint"].endswith("ckpt-30") and got["step"] == 30
    assert got["chars"] == 299 and got["text_chars"] == 300
    # `tf-rnn score` on the same 300 characters: the same BPC, to the last bit.
    (tmp_path / "first.txt").write_text(text.read_text()[:300], encoding="utf-8")
    code, scored, err = run_cli(capsys, "score", "--workdir", run, "--file",
                                tmp_path / "first.txt")
    assert code == 0, err
    assert got["bpc"] == scored["summary"]["bpc"] and scored["summary"]["chars"] == 299
    # The same inputs, the same bytes.
    code, _, err = run_cli(capsys, "inspect", "--workdir", run, "--file", text,
                           "--chars", 300, "--out", tmp_path / "b.html")
    assert code == 0, err
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    assert got["bytes"] == (tmp_path / "a.html").stat().st_size
    page = (tmp_path / "a.html").read_text(encoding="utf-8")
    assert page_data(page)["bpc"] == got["bpc"] and f'{got["bpc"]:.4f}</b>' in page
    assert "ckpt-30" in page and "&quot;num_nodes&quot;: 8" in page  # checkpoint, config
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "src=" not in page  # nothing to fetch


# In a real browser ----------------------------------------------------------------------

def chromium():
    """The headless browser's command, or a skip that says why there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return [path, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--force-device-scale-factor=1"]
    pytest.skip("no headless browser: the page cannot be opened, so it is not tested; "
                "install Debian's `chromium` (apt-get install chromium; .ci/run does)")


def dump_dom(path, fragment=""):
    out = subprocess.run([*chromium(), "--dump-dom", f"file://{path}{fragment}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'data-ready="1"' in out.stdout, "the page's script did not run to its end"
    return out.stdout


class Dom(html.parser.HTMLParser):
    """The rendered text's character spans (their text and attributes) and its words
    (the characters' indices in each `span.word` block), the ranking's rows, the
    summary's BPC and the legend, from Chromium's serialised DOM."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.spans, self.ranks, self.stack, self.feature = [], {}, [], None
        self.words, self.in_text, self.bpc, self._bpc = [], False, None, False
        self.panel, self._panel, self.legend, self._legend = "", False, "", False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "text":
            self.in_text = True
        elif self.in_text and tag == "span":
            word = attrs.get("class") == "word"
            if word:
                self.words.append([])
            elif self.stack and self.stack[-1]:  # a character inside a word
                self.words[-1].append(len(self.spans))
            self.stack.append(word)
            if not word:
                self.spans.append([attrs, ""])
        if tag == "table" and "data-feature" in attrs:
            self.feature = attrs["data-feature"]
            self.ranks[self.feature] = []
        if tag == "tr" and self.feature and "data-r" in attrs:
            self.ranks[self.feature].append((int(attrs["data-unit"]), float(attrs["data-r"])))
        self._bpc = attrs.get("id") == "bpc"
        self._panel = attrs.get("id") == "panel"
        self._legend = attrs.get("id") == "legend"

    def handle_endtag(self, tag):
        if tag == "span" and self.in_text:
            self.stack.pop()
        if tag == "div" and self.in_text:
            self.in_text = False
        if tag == "table":
            self.feature = None
        if tag == "div":
            self._panel = self._legend = False

    def handle_data(self, data):
        if self.in_text and self.spans:
            self.spans[-1][1] += data
        if self._bpc:
            self.bpc, self._bpc = float(data), False
        if self._panel:
            self.panel += data
        if self._legend:
            self.legend += data


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A page of a spread-weights Elman model over words, with its figures and hidden."""
    model = spread_model(seed=2, model="elman")
    text = words(400, seed=5)
    ids = VOCAB.encode(text)
    body, figures = report.render(model, ids, VOCAB.chars, num_unrollings=10)
    path = tmp_path_factory.mktemp("page") / "report.html"
    path.write_text(body, encoding="utf-8")
    hidden, _, _ = units.hidden_states(model, ids)
    scores = scoring.score_characters(scoring.window_scorer(model), ids, model.zero_state(1))
    return path, text, figures, hidden, scores


@pytest.mark.slow
def test_the_browser_draws_pythons_numbers(page):
    path, text, figures, hidden, scores = page
    p = 2.0 ** scores["log2p"]
    unit = figures["ranking"]["since_space"][1][0]  # not the default unit
    dom = Dom(dump_dom(path, f"#unit={unit}&char=7"))
    assert "".join(s for _, s in dom.spans) == text
    shown = np.array([float(a.get("data-p", "nan")) for a, _ in dom.spans])
    assert np.isnan(shown[0])
    np.testing.assert_allclose(shown[1:], p[1:], rtol=1e-4)  # 5 digits drawn
    values = np.array([float(a["data-v"]) for a, _ in dom.spans])
    lo, hi = figures["act_range"]
    np.testing.assert_allclose(values, hidden[:, unit], atol=(hi - lo) / 255 / 2 + 1e-4)
    r = units.correlations(hidden, units.text_features(text))
    for feature, rows in dom.ranks.items():
        want = units.ranking(r)[feature]
        assert [u for u, _ in rows] == [u for u, _ in want]
        np.testing.assert_allclose([v for _, v in rows], [v for _, v in want], atol=1e-4)
    assert set(dom.ranks) == {f for f in units.FEATURES if f not in figures["constant"]}
    assert dom.bpc == pytest.approx(figures["bpc"], abs=5e-5)
    assert "next: " in dom.spans[5][0]["title"]  # hover: the guesses after the character
    # The hover panel of character 7: its probability, the guesses there and after it.
    show = lambda c: {" ": "\u2423", "\n": "\u21b5"}.get(c, c)  # noqa: E731
    guesses = lambda i: "  ".join(f"{show(VOCAB.chars[c])} {q:.3f}" for c, q in  # noqa: E731
                                  zip(scores["top_ids"][i], scores["top_p"][i]))
    head = re.fullmatch(r"char 7 (\".*\")  p=(\S+)  (\S+) bits  unit (\d+)=(\S+)",
                        dom.panel.splitlines()[0])
    assert json.loads(head[1]) == text[7] and int(head[4]) == unit
    assert float(head[2]) == pytest.approx(p[7], rel=1e-3)
    assert float(head[3]) == pytest.approx(-scores["log2p"][7], abs=0.006)
    assert float(head[5]) == pytest.approx(hidden[7, unit], abs=(hi - lo) / 255 / 2 + 6e-4)
    assert dom.panel.splitlines()[1:] == [f"guessed here: {guesses(7)}",
                                          f"next guesses: {guesses(8)}"]


def rendered_dom(path, text):
    """The DOM Chromium builds from the page of a small untrained model over `text`."""
    vocab = Vocabulary("".join(sorted(set(text))))
    model = models.build_model(config_lib.Config(num_nodes=4, vocab="corpus"), vocab.size)
    body, _ = report.render(model, vocab.encode(text), vocab.chars, num_unrollings=8)
    path.write_text(body, encoding="utf-8")
    return Dom(dump_dom(path))


@pytest.mark.slow
def test_the_escaped_text_renders_as_itself(tmp_path):
    text = 'a <b>&amp; "q" \'s\n</script><script>x=1</script>\n& < > done'
    dom = rendered_dom(tmp_path / "escaped.html", text)
    assert "".join(s for _, s in dom.spans) == text
    assert len(dom.spans) == len(text)


def with_script(body, script):
    """The page `body` with `script` run after the page's own (which draws the text)."""
    return body.replace("</body>", f"<script>{script}</script>\n</body>")


def background(style):
    """(r, g, b) of a character's background in Chromium's serialised style attribute."""
    found = re.search(r"background(?:-color)?: rgb\((\d+), (\d+), (\d+)\)", style)
    assert found, style
    return tuple(int(v) for v in found.groups())


SWEEPS = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "relu": (0.0, 2.5)}


@pytest.mark.slow
@pytest.mark.parametrize("activation", sorted(SWEEPS))
def test_the_legend_states_where_blue_turns_red(page, activation, tmp_path):
    """Issue 36: for each activation the split the legend states is the value where the
    page's colour of a unit turns from blue (below) to red (above); here every unit's
    values sweep the activation's range, one quantisation step apart or less."""
    _, text, figures, _, _ = page
    lo, hi = SWEEPS[activation]
    sweep = np.repeat(np.linspace(lo, hi, len(text))[:, None], figures["units"], axis=1)
    figures = {**figures, **report.unit_values(sweep, activation), "activation": activation}
    path = tmp_path / "legend.html"
    path.write_text(report.page(figures, {}, "legend"), encoding="utf-8")
    dom = Dom(dump_dom(path, "#unit=0"))
    split = float(re.fullmatch(rf"unit 0: blue < (\S+) < red, {activation} range .*",
                               dom.legend)[1])
    values = np.array([float(a["data-v"]) for a, _ in dom.spans])
    r, _, b = np.array([background(a["style"]) for a, _ in dom.spans]).T
    blue, red, step = b > r, r > b, (hi - lo) / 255 + 1e-4
    assert red.any() and (blue.any() or activation == "relu")  # relu: never below 0
    assert (values[blue] < split).all() and (values[red] > split).all(), (
        split, values[blue].max(initial=lo), values[red].min(initial=hi))
    # The colour changes at the split, not merely somewhere on the same side of it.
    assert values[~red].max() > split - step and values[red].min() < split + step
    np.testing.assert_allclose(values[~red & ~blue], split, atol=step / 2)  # white: at it


BREAKS = " \n\t"  # where the text may wrap; every other character belongs to a word


@pytest.mark.slow
def test_each_word_is_one_block_of_character_cells(tmp_path):
    """Issue 36: a word's characters (a run of anything but spaces, tabs and newlines)
    are the cells of one `span.word` block; the breaks between words are cells of their
    own, outside every block."""
    text = 'He said: "himself,\tnot-her!"  (x)\n\n<b>&amp; end.'
    dom = rendered_dom(tmp_path / "words.html", text)
    assert "".join(s for _, s in dom.spans) == text  # one cell per character
    want = [list(range(m.start(), m.end())) for m in re.finditer(f"[^{BREAKS}]+", text)]
    assert dom.words == want


@pytest.mark.slow
def test_a_narrow_page_wraps_between_words(tmp_path):
    """Issue 36 (`himsel|f`): in a narrow page every word's characters sit on one line;
    a word wider than a line is broken inside, and no letter leaves the text's box."""
    lexicon = ("himself", "understanding", "the", "remarkable", "of", "together", "a")
    long = "x" * 60  # wider than the 240 px line
    text = words(500, seed=6, lexicon=lexicon) + f" {long} end"
    model = spread_model(seed=3, model="elman")
    body, _ = report.render(model, VOCAB.encode(text), VOCAB.chars, num_unrollings=8)
    path = tmp_path / "narrow.html"
    path.write_text(with_script(body, """
      const text = document.getElementById("text"), box = text.getBoundingClientRect();
      text.style.width = "240px";
      const right = box.left + text.clientLeft + text.clientWidth -
        parseFloat(getComputedStyle(text).paddingRight);
      for (const s of text.querySelectorAll("span:not(.word)")) {
        const r = s.getBoundingClientRect();
        s.dataset.top = r.top.toFixed(0);
        s.dataset.inside = r.right <= right + 0.5 ? "1" : "0";
      }"""), encoding="utf-8")
    dom = Dom(dump_dom(path))
    assert "".join(s for _, s in dom.spans) == text
    top = [int(a["data-top"]) for a, _ in dom.spans]
    assert len(set(top)) > 10  # premise: the text wraps, many times
    split = [m.group() for m in re.finditer(f"[^{BREAKS}]+", text)
             if m.group() != long and len({top[i] for i in range(m.start(), m.end())}) > 1]
    assert split == []
    start = text.index(long)
    assert len({top[i] for i in range(start, start + len(long))}) > 1
    # A space at a line's end may hang past it (white-space: pre-wrap); no letter does.
    assert all(a["data-inside"] == "1" for a, c in dom.spans if c not in BREAKS)


def png_pixels(path):
    """(height, width, channels) uint8 of an 8-bit RGB or RGBA PNG (zlib + struct)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, idat = 8, {}, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        idat += body if kind == b"IDAT" else b""
        chunks.setdefault(kind, body)
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    c = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * c
    out, prev = np.zeros((height, stride), np.int64), np.zeros(stride, np.int64)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int64)
        if kind == 0:
            row = line
        elif kind == 2:
            row = (line + prev) % 256
        else:  # 1 sub, 3 average, 4 Paeth: each byte depends on the one to its left
            row = np.zeros(stride, np.int64)
            for x in range(stride):
                a = row[x - c] if x >= c else 0
                b, d = prev[x], prev[x - c] if x >= c else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - d
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - d)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else d
                row[x] = (line[x] + pred) % 256
        out[y], prev = row, row
    return out.reshape(height, width, c).astype(np.uint8)


@pytest.mark.slow
def test_a_screenshot_is_not_blank(page, tmp_path):
    path, _, figures, _, _ = page
    shot = tmp_path / "shot.png"
    out = subprocess.run([*chromium(), f"--screenshot={shot}", "--window-size=800,600",
                          f"file://{path}#unit={figures['default_unit']}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    rgb = png_pixels(shot)[..., :3].astype(int)
    assert rgb.shape[:2] == (600, 800)
    ink = (rgb.sum(-1) < 600).mean()  # text, tables, lines
    tinted = ((rgb.max(-1) - rgb.min(-1)) > 40).mean()  # the coloured characters
    assert ink > 0.01 and tinted > 0.01, (ink, tinted)


def test_bad_chars_and_short_texts_are_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "inspect", "--workdir", tmp_path / "nowhere", "--file",
                           tmp_path / "t.txt", "--chars", 0, "--out", tmp_path / "r.html")
    assert code == 2 and err.count("\n") == 1 and "chars" in err and "0" in err
    with pytest.raises(ValueError, match="Cannot inspect a text of 1 character"):
        report.collect(spread_model(), VOCAB.encode("a"), VOCAB.chars)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_the_hello_experiment_writes_the_page_of_a_seed_that_learned(tmp_path, capsys):
    """experiments.hello --report: the page of its first successful seed, whose best
    guess for every character after the first is that character (it regenerates
    'hello')."""
    import base64

    from experiments import hello

    out = tmp_path / "hello.html"
    assert hello.main(["--seeds", "2", "--steps", "600", "--workdir", str(tmp_path / "run"),
                       "--report", str(out), "--no-progress"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["succeeded"] >= 1 and got["report"] == str(out)  # premise: one learned
    figures = page_data(out.read_text(encoding="utf-8"))
    assert figures["units"] == 10 and figures["text"] == "hello" and figures["n"] == 5
    top = np.frombuffer(base64.b64decode(figures["top_ids"]), "u1").reshape(5, 4)
    assert [figures["alphabet"][i] for i in top[1:, 0]] == list("ello")
    assert figures["activation"] == "sigmoid" and figures["bpc"] < 0.5
