"""Showing user-provided text safely: as text, never as markup."""
from __future__ import annotations

import re
from typing import Any

# Emphasis, code, links and images, tables, HTML, strikethrough, math ($ is LaTeX in Streamlit), entities.
_MARKDOWN = re.compile(r"([\\`*\[\]|<>~$&])")
_UNDERSCORE = re.compile(r"_+")
_LINE_BREAK = re.compile(r"\r\n|[\r\n]")
# At the very start only (there are no line breaks left): a heading, list item, rule or ordered list.
_BLOCK_START = re.compile(r"^(\s*)(?:([#+=-])(?=\s|$|\2)|(\d{1,9})([.)])(?=\s|$))")
_IMAGE = re.compile(r"!(?=\\\[)")                               # ![ : an image
_LINK_TARGET = re.compile(r"(?<=\\\])\(([^()]*)\)")             # ](...) : a link or image target
_LINK_OPEN = re.compile(r"(?<=\\\])\(")


def _underscores(m: re.Match[str]) -> str:
    """Underscores inside a word (snake_case) cannot emphasize in CommonMark, so they stay readable."""
    s, i, j = m.string, m.start(), m.end()
    inside_word = i > 0 and j < len(s) and s[i - 1].isalnum() and s[j].isalnum()
    return m.group() if inside_word else m.group().replace("_", r"\_")


def _block_start(m: re.Match[str]) -> str:
    space, marker, digits, dot = m.groups()
    return f"{space}\\{marker}" if marker else f"{space}{digits}\\{dot}"


def escape_markdown(text: Any) -> str:
    """Text shown literally in Markdown: markup characters backslash-escaped, no line breaks.

    Safe anywhere in a Markdown string (st.info, st.caption, a memo line) except inside a code span.
    """
    out = _MARKDOWN.sub(r"\\\1", _LINE_BREAK.sub(" ", str(text)))
    out = _UNDERSCORE.sub(_underscores, out)
    out = _BLOCK_START.sub(_block_start, out, count=1)
    out = _IMAGE.sub(r"\\!", out)
    out = _LINK_TARGET.sub(r"\\(\1\\)", out)
    return _LINK_OPEN.sub(r"\\(", out)
