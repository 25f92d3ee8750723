"""Showing user-provided text safely: as text, never as markup."""
from __future__ import annotations

import re
from typing import Any

_MARKDOWN = re.compile(r"([\\`*_\[\]|<>~])")   # emphasis, code, links and images, tables, HTML


def escape_markdown(text: Any) -> str:
    """Text shown literally in Markdown: markup characters backslash-escaped, no line breaks."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")
