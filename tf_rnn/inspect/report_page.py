"""The fixed parts of `tf-rnn inspect`'s HTML page: its style and its script.

`tf_rnn.inspect.report` fills `PAGE` with the report's own parts (a JSON data block, the static
tables, the gradient profile's SVG). The script reads the data block and draws what
depends on the reader's choices: the text coloured by surprisal or by one unit, the
hover panel (a character's probability and the model's guesses), the unit picker, the
ranking and per-unit tables. No network, no libraries: the file opens from disk.

The data block (numbers packed as little-endian base64 to keep 100 000 characters in a
few MB): `bits` float32 surprisal -log2 p per character (NaN: none, the first);
`top_ids` (N, k) the guesses for each position, uint8 (255: none) for an alphabet
of under 255 characters, else uint16 (65535: none); `top_p` uint16
probability x 65535; `act` uint8 (H, M) unit-major, each unit's activation over the
first M characters quantised to 255 steps of `act_range`; `act_split` the value where
a unit's colour turns from blue (below) to red (above), which the legend states
(`tf_rnn.inspect.report.colour_scale`).

The text wraps at spaces, tabs and newlines alone: each run of other characters (a
word) is one inline block of character cells, broken inside only when wider than a line.

The page's address may end in `#unit=U` (or `#unit=top`): it then opens coloured by
unit U (the ranking's best unit); `#char=I` (also `#unit=U&char=I`) opens with the
hover panel of character I shown.
"""

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:18px 0 6px}
#text{font:15px/1.7 ui-monospace,monospace;white-space:pre-wrap;
border:1px solid #ccc;padding:8px;max-height:60vh;overflow:auto}
#text span.word{display:inline-block;max-width:100%;overflow-wrap:anywhere}
#text span{cursor:default}#text span.sel{outline:1px solid #000}
#controls{margin:8px 0;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
#panel{font:13px ui-monospace,monospace;background:#f6f6f6;border:1px solid #ccc;
padding:6px;min-height:3.2em;white-space:pre}
table{border-collapse:collapse;font-size:13px}td,th{padding:1px 8px;text-align:right}
th{background:#eee}tr.pick{cursor:pointer}tr.pick:hover{background:#ffe}
.rank{display:flex;flex-wrap:wrap;gap:12px}.rank table{margin-bottom:8px}
.note{color:#666;font-size:12px}pre{background:#f6f6f6;padding:6px;overflow:auto}
"""

SCRIPT = r"""
(function () {
  "use strict";
  const started = performance.now();
  const D = JSON.parse(document.getElementById("data").textContent);
  const $ = (id) => document.getElementById(id);
  function bytes(s) {
    const b = atob(s), a = new Uint8Array(b.length);
    for (let i = 0; i < b.length; i++) a[i] = b.charCodeAt(i);
    return a;
  }
  function u16(s) {
    const a = bytes(s), v = new DataView(a.buffer), o = new Uint16Array(a.length / 2);
    for (let i = 0; i < o.length; i++) o[i] = v.getUint16(2 * i, true);
    return o;
  }
  function f32(s) {
    const a = bytes(s), v = new DataView(a.buffer), o = new Float32Array(a.length / 4);
    for (let i = 0; i < o.length; i++) o[i] = v.getFloat32(4 * i, true);
    return o;
  }
  const N = D.n, K = D.top_k, H = D.units, M = D.unit_chars;
  const bits = f32(D.bits), topP = u16(D.top_p);
  const topIds = D.top_ids_none === 255 ? bytes(D.top_ids) : u16(D.top_ids);
  const act = bytes(D.act), lo = D.act_range[0], hi = D.act_range[1], split = D.act_split;
  const surprisal = (i) => isNaN(bits[i]) ? null : bits[i];
  const prob = (i) => { const s = surprisal(i); return s === null ? null : Math.pow(2, -s); };
  const value = (u, i) => i < M ? lo + act[u * M + i] * (hi - lo) / 255 : null;
  const show = (c) => c === " " ? "\u2423" : c === "\n" ? "\u21b5" : c;
  function guesses(i) {
    const out = [];
    if (i < 0 || i >= N) return out;
    for (let j = 0; j < K; j++) {
      const id = topIds[i * K + j];
      if (id === D.top_ids_none) break;
      out.push([D.alphabet[id], topP[i * K + j] / 65535]);
    }
    return out;
  }
  const list = (g) => g.map(([c, p]) => show(c) + " " + p.toFixed(3)).join("  ");
  let unit = D.default_unit, mode = "surprisal";

  // The text: one span per character, its probability and guesses in its title. A
  // word's spans sit in one inline block so that lines break between words alone.
  const text = $("text"), frag = document.createDocumentFragment(), spans = [];
  const breaks = (c) => c === " " || c === "\n" || c === "\t" || c === "\r";
  let word = null;
  for (let i = 0; i < N; i++) {
    const s = document.createElement("span");
    spans.push(s);
    s.textContent = D.text[i];
    const p = prob(i);
    if (p !== null) s.dataset.p = p.toPrecision(5);
    s.title = show(D.text[i]) + (p === null ? " (first: not scored)" :
      " p=" + p.toPrecision(4) + " (" + surprisal(i).toFixed(2) + " bits)") +
      "\nnext: " + list(guesses(i + 1));
    if (breaks(D.text[i])) {
      word = null;
      frag.appendChild(s);
      continue;
    }
    if (word === null) {
      word = document.createElement("span");
      word.className = "word";
      frag.appendChild(word);
    }
    word.appendChild(s);
  }
  text.appendChild(frag);

  function colour(t) {  // t in [-1, 1]: blue below 0, red above
    const a = Math.min(1, Math.abs(t));
    return "hsl(" + (t < 0 ? 215 : 0) + ",85%," + (100 - 48 * a).toFixed(1) + "%)";
  }
  function scaled(v) {  // an activation -> [-1, 1]: 0 at the split, -1 at lo, 1 at hi
    const end = v < split ? split - lo : hi - split;
    return end > 0 ? (v - split) / end : 0;
  }
  function paint() {
    for (let i = 0; i < N; i++) {
      const s = spans[i];
      if (mode === "unit") {
        const v = value(unit, i);
        s.style.background = v === null ? "#fff" : colour(scaled(v));
        if (v === null) delete s.dataset.v; else s.dataset.v = v.toFixed(4);
      } else {
        const b = surprisal(i);
        s.style.background = b === null ? "#fff" : colour(Math.min(1, b / D.bits_max));
        delete s.dataset.v;
      }
    }
    $("mode").value = mode;
    $("unit").value = unit;
    const best = D.unit_best[unit];
    $("unit-info").textContent = "unit " + unit + " (" + D.unit_layer[unit] + "): " +
      D.rate_name + " " + D.unit_rate[unit].toFixed(3) +
      (best ? "; best feature " + best[0] + " r=" + best[1].toFixed(3) : "") +
      (M < N ? "; values for the first " + M + " characters" : "");
    $("legend").textContent = mode === "unit" ? "unit " + unit + ": blue < " +
      split.toFixed(2) + " < red, " +
      D.activation + " range [" + lo.toFixed(2) + ", " + hi.toFixed(2) + "]" :
      "surprisal -log2 p: white 0 bits, red >= " + D.bits_max.toFixed(1) + " bits";
  }
  function pick(u, m) {
    if (u >= 0 && u < H) unit = u;
    mode = m || "unit";
    paint();
  }
  function describe(i) {  // the hover panel of character i
    if (!(i >= 0 && i < N)) return;
    const p = prob(i), v = value(unit, i);
    $("panel").textContent = "char " + i + " " + JSON.stringify(D.text[i]) +
      (p === null ? "  (first: not scored)" : "  p=" + p.toPrecision(4) + "  " +
       surprisal(i).toFixed(2) + " bits") +
      (v === null ? "" : "  unit " + unit + "=" + v.toFixed(3)) +
      "\nguessed here: " + list(guesses(i)) + "\nnext guesses: " + list(guesses(i + 1));
  }
  text.addEventListener("mouseover",
                        (e) => describe(spans.indexOf(e.target)));
  $("mode").addEventListener("change", (e) => pick(unit, e.target.value));
  $("unit").addEventListener("change", (e) => pick(parseInt(e.target.value, 10), "unit"));

  // The ranking: per feature, the units with the largest |r|; a click shows the unit.
  function row(cells, u) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    if (u !== undefined) {
      tr.className = "pick";
      tr.dataset.unit = u;
      tr.addEventListener("click", () => pick(u, "unit"));
    }
    return tr;
  }
  function table(caption, head, rows) {
    const t = document.createElement("table"), cap = document.createElement("caption");
    cap.textContent = caption;
    t.appendChild(cap);
    const h = document.createElement("tr");
    for (const c of head) {
      const th = document.createElement("th");
      th.textContent = c;
      h.appendChild(th);
    }
    t.appendChild(h);
    for (const r of rows) t.appendChild(r);
    return t;
  }
  for (const name of Object.keys(D.ranking)) {
    if (!D.ranking[name].length) continue;  // constant on this text: the note says so
    const rows = D.ranking[name].map(([u, r]) => {
      const tr = row([u, r.toFixed(3)], u);
      tr.dataset.r = r.toFixed(4);
      return tr;
    });
    const t = table(name, ["unit", "r"], rows);
    t.dataset.feature = name;
    t.title = D.features[name];
    $("ranking").appendChild(t);
  }
  const unitRows = [];
  for (let u = 0; u < H; u++) {
    const b = D.unit_best[u], r = D.unit_rate[u];
    const flag = D.activation === "relu" ? (r === 0 ? "dead" : "") : (r === 1 ? "stuck" : "");
    unitRows.push(row([u, D.unit_layer[u], r.toFixed(3), flag, b ? b[0] : "-",
                       b ? b[1].toFixed(3) : "-"], u));
  }
  $("units").appendChild(table("", ["unit", "layer", D.rate_name, "", "best feature", "r"],
                               unitRows));

  function fromHash() {
    const m = /unit=(\d+|top)/.exec(location.hash);
    if (m) pick(m[1] === "top" ? D.default_unit : parseInt(m[1], 10), "unit");
    else paint();
    const c = /char=(\d+)/.exec(location.hash);  // as if character c were hovered
    if (c) describe(parseInt(c[1], 10));
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  // What drawing the page took (its bytes hold no time: this is the DOM's alone).
  document.body.dataset.drawMs = (performance.now() - started).toFixed(0);
  document.body.dataset.ready = "1";
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
<p id="summary">{summary}</p>
<div id="controls">
<label>colour by <select id="mode"><option value="surprisal">surprisal</option>
<option value="unit">unit</option></select></label>
<label>unit <input id="unit" type="number" min="0" max="{max_unit}" step="1"></label>
<span id="unit-info"></span>
</div>
<div class="note" id="legend"></div>
<div id="text"></div>
<div id="panel">hover a character: its probability and the model's guesses</div>
<h2>Units ranked by |Pearson r| with features of the text</h2>
<p class="note">{ranking_note}</p>
<div class="rank" id="ranking"></div>
<h2>Activity per layer</h2>
{layers}
<h2>Gradient vs lag</h2>
{profile}
<h2>Every unit</h2>
<div id="units"></div>
<h2>Run</h2>
{about}
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
