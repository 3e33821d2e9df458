"""A Griffe extension for the API reference: the docstrings' reStructuredText habits, as Markdown.

The docstrings are written to read well in a terminal and to run as doctests
(``pytest --doctest-modules``): double-backtick code, roles such as ``:class:`Name```, a
paragraph ending in ``::`` before an indented block, and ``>>>`` examples. Markdown already
renders double backticks and indented blocks; this extension rewrites the rest when the site
is built (the source files stay as they are):

- a doctest (from a ``>>>`` line to the next blank line) becomes a fenced ``pycon`` block
  (Markdown would otherwise read ``>>>`` as three nested quotes);
- ``:class:`X```, ``:func:`X```, ``:meth:`X``` and the like become ```X```;
- a line ending in ``::`` ends in ``:``.

mkdocs.yml loads it (``extensions:`` of the mkdocstrings Python handler).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`~?([^`]+)`")


def to_markdown(text: str) -> str:
    """The docstring ``text`` with its doctests fenced, its roles as code and ``::`` as ``:``."""
    out: list[str] = []
    fence = None  # the indentation of the open pycon fence, if any
    for line in text.split("\n"):
        stripped = line.lstrip()
        if fence is None and stripped.startswith(">>>"):
            fence = line[: len(line) - len(stripped)]
            out.append(fence + "```pycon")
        elif fence is not None and not stripped:
            out.append(fence + "```")
            fence = None
        if fence is None:
            line = ROLE.sub(r"`\1`", line)
            if line.endswith("::") and not line.endswith(":::"):
                line = line[:-1]
        out.append(line)
    if fence is not None:
        out.append(fence + "```")
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Rewrites every docstring with :func:`to_markdown` once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
