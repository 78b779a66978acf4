"""The README and the pages under docs/: every relative link leads somewhere.

A link `[text](path#anchor)` or picture `![alt](path)` in README.md or docs/*.md must
name a file that exists (relative to the page holding the link) and, with an anchor, a
heading of that page under GitHub's slug rules. Links in code blocks and code spans are
text, not links. Addresses with a scheme (https:, mailto:) are not checked: no network.
Reads files only (no TensorFlow): fast.
"""

import re

import pytest
from support import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 150  # a front page; the manual lives in docs/
README_MAX_WIDTH = 160

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text):
    """(line number, line) of a markdown text outside its fenced code blocks."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
        elif not inside:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading: its rendered text lowercased, every character that
    is not a letter, digit, space, hyphen or underscore dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = text.replace("`", "").replace("*", "")
    text = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(page):
    """Every heading anchor of a page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen, found = {}, set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page):
    """(line number, target) of every link and picture in a page's prose."""
    return [(number, m.group(1))
            for number, line in prose_lines(page.read_text(encoding="utf-8"))
            for m in LINK.finditer(CODE_SPAN.sub("``", line))]


def broken(page):
    """The links of a page that lead nowhere, as readable lines."""
    found = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked
            continue
        path, _, anchor = target.partition("#")
        goal = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}:{number}: ({target})"
        if not goal.exists():
            found.append(f"{where} {path} does not exist")
        elif anchor and goal.suffix == ".md" and anchor not in anchors(goal):
            found.append(f"{where} {goal.relative_to(ROOT)} has no heading #{anchor}")
    return found


def test_slugs_follow_github():
    assert slug("Quality per CPU-minute") == "quality-per-cpu-minute"
    assert slug("Arch 1 `sum` and `mul` against Keras at `text8_best`'s shape") == (
        "arch-1-sum-and-mul-against-keras-at-text8_bests-shape")
    assert slug("Preemption: SIGTERM and Ctrl-C") == "preemption-sigterm-and-ctrl-c"


def test_links_are_found_outside_code_only():
    page = ROOT / "tests" / "_links_probe.md"
    try:
        page.write_text("# Top\n[a](#top) `[b](#nowhere)` ![c](x.png)\n```\n[d](#nowhere)\n"
                        "# not a heading\n```\n[e](#top-1)\n# Top\n", encoding="utf-8")
        assert [t for _, t in links(page)] == ["#top", "x.png", "#top-1"]
        assert anchors(page) == {"top", "top-1"}
        assert broken(page) == ["tests/_links_probe.md:2: (x.png) x.png does not exist"]
    finally:
        page.unlink()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_leads_somewhere(page):
    assert links(page) or page.name != "README.md", "the README links to its pages"
    assert broken(page) == []


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    long = [i + 1 for i, line in enumerate(lines) if len(line) > README_MAX_WIDTH]
    assert long == [], f"README.md lines over {README_MAX_WIDTH} characters: {long}"


def test_the_readmes_test_command_is_the_one_ci_runs():
    """.ci/run runs the README's test command verbatim: the second line of its first block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    command = block[1].split("  #")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert command == ci == 'pip install -e ".[cpu,test,bench]" && python -m pytest'


def test_every_module_is_on_the_layer_map():
    """Every module is named in its folder's row of docs/architecture.md, the map the
    README links to (tests/test_layers.py reads the folders' order from it)."""
    modules = sorted(p.stem for p in (ROOT / "tf_rnn").rglob("*.py")
                     if p.stem not in ("__init__", "__main__"))
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [m for m in modules if f"`{m}`" not in architecture]
    assert missing == [], f"docs/architecture.md places no layer for {missing}"


NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve").split()


@pytest.mark.parametrize("page", [ROOT / "docs" / "cli.md"], ids=lambda p: p.name)
def test_the_count_of_commands_is_the_clis(page):
    """'has N commands: `a`, `b` ...' names every command of tf_rnn.cli, and N is their
    number (issue 36, item 9: the page said five when there were seven)."""
    from tf_rnn.cli import COMMANDS

    flat = " ".join(page.read_text(encoding="utf-8").split())
    found = re.search(r"has (\w+) commands: (.*?)\(", flat)
    assert found, f"{page.name} does not say how many commands tf-rnn has"
    named = re.findall(r"`(\w+)`", found.group(2))
    assert NUMBERS.index(found.group(1)) == len(COMMANDS)
    assert named == list(COMMANDS)


def test_the_readme_gives_no_test_count_that_drifts():
    """A count of tests in the README goes stale with the next test (issue 36, 9)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"\b\d[\d ,]* tests\b", text), re.search(r"\b\d[\d ,]* tests\b", text)


def test_the_models_page_lists_the_table_of_models():
    """docs/models.md has a row per entry of `tf_rnn.base.model_table` with its summary."""
    from tf_rnn.base import model_table

    page = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    for name, entry in model_table.MODELS.items():
        assert f"| `{name}` | {entry.summary} |" in page, name
