"""pytest collects the documentation: every Python code block of README.md and of the pages in docs/ runs.

Sybil (a maintained plugin) parses the Markdown. A ```python block runs as it stands; one that
starts with ``>>>`` is a doctest whose printed output is compared with the page. The blocks of
one page share one namespace, in page order, so a page reads (and runs) top to bottom. Blocks
that must not run carry another language tag (```bash, ```text). ``...`` in a shown output
matches anything (doctest's ELLIPSIS), for the parts that change from run to run.
"""

from __future__ import annotations

from doctest import ELLIPSIS

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser

import tinygrad_rnn as tg

DOC_PAGES = ["README.md", "docs/*.md", "docs/*/*.md"]

# The site's build tools are not modules to import for doctests: griffe_rst.py needs the docs extra,
# which the test run does not. tests/test_docs.py exercises both scripts.
collect_ignore_glob = ["docs/scripts/*.py"]


def _setup(namespace: dict) -> None:
    """Each page starts as a test does: float32 by default, the default generator seeded."""
    tg.set_default_dtype("float32")
    tg.manual_seed(0)


def _teardown(namespace: dict) -> None:
    tg.set_default_dtype("float32")  # a page that switched to float64 leaves nothing behind


SYBIL = Sybil(
    parsers=[PythonCodeBlockParser(doctest_optionflags=ELLIPSIS)],
    patterns=DOC_PAGES,
    setup=_setup,
    teardown=_teardown,
)
pytest_collect_file = SYBIL.pytest()
