"""The one JSONL reader: one JSON value per line, lines split on newlines only.

JSON strings may hold U+2028, U+2029, form feeds and other characters that `str.splitlines()` treats as
line breaks; splitting on them would cut a valid row in two. Only "\\n" (and "\\r\\n") end a line here.
A line nested deeper than MAX_DEPTH is refused before json.loads, which would overflow the stack on it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator

MAX_DEPTH = 100                                 # arrays and objects inside one another, on one line
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')        # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


@dataclass
class Line:
    number: int                  # 1-based line number in the file
    value: Any = None
    error: str | None = None     # why the line is not JSON (None when it parsed)


def lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text, split on "\\n" only, with a trailing "\\r" dropped."""
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line[:-1] if line.endswith("\r") else line


def parse(text: str) -> list[Line]:
    """Every non-blank line of a JSONL text, parsed, or with the reason it could not be."""
    out = []
    for number, line in lines(text):
        if not line.strip():
            continue
        if too_deep(line):
            out.append(Line(number, error=f"nested deeper than {MAX_DEPTH} levels"))
            continue
        try:
            out.append(Line(number, json.loads(line)))
        except json.JSONDecodeError as exc:
            out.append(Line(number, error=f"malformed JSON ({exc.msg} at column {exc.colno})"))
    return out


def too_deep(line: str, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON line nests arrays and objects deeper than `limit`; brackets inside strings do not count."""
    if line.count("[") + line.count("{") <= limit:
        return False
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", line)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False
