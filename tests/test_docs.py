"""The documentation site stays true: its code runs, its references resolve, its pictures are current.

The code blocks of the pages themselves run as tests of their own (collected by the root
conftest.py with Sybil: ``docs/*.md::line:N``). These tests check what keeps that honest: that
pytest collects the pages, that no block escapes by lacking a language tag, that a wrong output
shown in a page fails, that every object the site renders or links to exists, and that the tape
pictures are what today's code draws.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
# Fenced blocks that must not run say what they are; a block without a tag would pass unseen.
NOT_RUN = {"bash", "text", "console", "dot", "toml", "yaml"}


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fences(text: str) -> list[str]:
    """The language tag of every fenced block (an empty string for none), in order."""
    tags, inside = [], False
    for line in text.splitlines():
        m = re.match(r"^\s*```(.*)$", line)
        if m:
            if not inside:
                tags.append(m.group(1).strip())
            inside = not inside
    return tags


def test_pytest_collects_the_pages_and_the_readme():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert {"docs", "README.md"} <= set(config["testpaths"])
    sybil = _load("docs_conftest", ROOT / "conftest.py").SYBIL
    for page in PAGES:
        assert sybil.should_parse(page), page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_is_python_that_runs_or_tagged_as_not_run(page):
    tags = _fences(page.read_text(encoding="utf-8"))
    assert all(t == "python" or t in NOT_RUN for t in tags), tags


def test_every_python_block_of_the_pages_becomes_a_test():
    sybil = _load("docs_conftest", ROOT / "conftest.py").SYBIL
    total = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = [m.span() for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.M | re.S)]
        starts = [start for start, _ in sybil.parse(page).regions]  # a doctest: one region per >>> example
        assert all(any(a <= s < b for s in starts) for a, b in blocks), page
        total += len(blocks)
    assert total >= 30  # 45 blocks today: a floor that catches the regex or the pages going missing


def test_a_page_whose_shown_output_is_wrong_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\n>>> import tinygrad_rnn as tg\n>>> tg.tensor([1.0, 2.0]).sum().item()\n4.0\n```\n")
    sybil = _load("docs_conftest", ROOT / "conftest.py").SYBIL
    examples = list(sybil.parse(page).examples())
    examples[0].evaluate()
    with pytest.raises(Exception, match="Expected:\n    4.0\nGot:\n    3.0"):
        examples[1].evaluate()


# ---------------------------------------------------------------- references into the code

def _resolve(identifier: str) -> object:
    """Import the longest module prefix of a dotted name, then follow attributes."""
    parts = identifier.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for name in parts[k:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(identifier)


def _references() -> list[tuple[str, str]]:
    """(page, identifier) for every ``::: name`` block and ``[text][name]`` link of the site."""
    refs = []
    for page in DOCS.rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        names = re.findall(r"^::: ([\w.]+)", text, flags=re.M) + re.findall(r"\]\[(tinygrad_rnn[\w.]*)\]", text)
        refs += [(str(page.relative_to(ROOT)), name) for name in names]
    return refs


def test_every_object_the_site_renders_or_links_to_exists():
    refs = _references()
    assert len(refs) > 30
    missing = []
    for page, name in refs:
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(f"{page}: {name}")
    assert not missing


# ---------------------------------------------------------------- the tape pictures

PICTURES = ["lstm_tape.dot", "lstm_tape_steps.dot"]


def test_the_committed_tape_pictures_are_what_the_script_draws_from_todays_code():
    script = _load("tape_picture", DOCS / "scripts" / "tape_picture.py")
    dots = script.lstm_tape_dots()
    assert sorted(dots) == sorted(PICTURES)
    for name, text in dots.items():
        assert (DOCS / "img" / name).read_text(encoding="utf-8") == text, f"rerun docs/scripts/tape_picture.py ({name})"


def _dot_graph(text: str) -> tuple[set[str], set[tuple[str, str]]]:
    nodes = set(re.findall(r"^\s*(\w+) \[(?:shape|label)", text, flags=re.M))
    edges = set(re.findall(r"^\s*(\w+) -> (\w+);$", text, flags=re.M))
    return nodes, edges


def _svg_graph(svg: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Graphviz SVG: each node and edge is a <g class="node|edge"> whose <title> is its DOT name."""
    ns = {"s": "http://www.w3.org/2000/svg"}
    root = ET.fromstring(svg)
    nodes, edges = set(), set()
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        title = g.find("s:title", ns)
        if g.get("class") == "node":
            nodes.add(title.text)
        elif g.get("class") == "edge":
            a, b = title.text.split("->")
            edges.add((a, b))
    return nodes, edges


@pytest.mark.parametrize("name", PICTURES)
def test_each_committed_svg_draws_exactly_its_dot_graph(name):
    dot_text = (DOCS / "img" / name).read_text(encoding="utf-8")
    svg = (DOCS / "img" / name).with_suffix(".svg").read_text(encoding="utf-8")
    nodes, edges = _dot_graph(dot_text)
    assert len(nodes) > 5 and edges
    assert _svg_graph(svg) == (nodes, edges)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("name", PICTURES)
def test_graphviz_renders_each_committed_dot(name):
    path = DOCS / "img" / name
    out = subprocess.run(["dot", "-Tsvg", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert _svg_graph(out.stdout) == _dot_graph(path.read_text(encoding="utf-8"))


def test_the_picture_script_writes_the_dot_files(tmp_path, monkeypatch):
    script = _load("tape_picture_run", DOCS / "scripts" / "tape_picture.py")
    monkeypatch.setattr(script, "IMG", tmp_path)
    monkeypatch.setattr(script.shutil, "which", lambda name: None)  # no Graphviz: DOT only, status 1
    assert script.main() == 1
    for name in PICTURES:
        assert (tmp_path / name).read_text(encoding="utf-8") == (DOCS / "img" / name).read_text(encoding="utf-8")


def test_the_api_reference_shows_doctests_as_code_and_roles_as_names():
    pytest.importorskip("griffe")  # the docs extra
    to_markdown = _load("griffe_rst", DOCS / "scripts" / "griffe_rst.py").to_markdown
    doc = "Run it, see :class:`Tensor` and :func:`~tinygrad_rnn.grad`::\n\n    y = f(x)\n\n>>> f(1)\n2\n\nDone."
    assert to_markdown(doc) == ("Run it, see `Tensor` and `tinygrad_rnn.grad`:\n\n    y = f(x)\n\n"
                                "```pycon\n>>> f(1)\n2\n```\n\nDone.")
    assert to_markdown("    >>> g()\n    3") == "    ```pycon\n    >>> g()\n    3\n    ```"


def test_every_test_a_page_names_exists():
    """docs/contract.md (and any page) proves its promises by naming tests: each must exist."""
    named = {m for page in PAGES for m in re.findall(r"tests/(\w+\.py)::(\w+)", page.read_text(encoding="utf-8"))}
    assert len(named) > 30  # the contract names its tests
    missing = [f"{f}::{name}" for f, name in sorted(named)
               if not re.search(rf"^(async )?def {name}\(", (ROOT / "tests" / f).read_text(encoding="utf-8"), re.M)]
    assert missing == []
