"""The one JSONL reader: one JSON value per line, lines split on newlines only.

JSON strings may hold U+2028, U+2029, form feeds and other characters that `str.splitlines()` treats as
line breaks; splitting on them would cut a valid row in two. Only "\\n" (and "\\r\\n") end a line here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator


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
        try:
            out.append(Line(number, json.loads(line)))
        except json.JSONDecodeError as exc:
            out.append(Line(number, error=f"malformed JSON ({exc.msg} at column {exc.colno})"))
    return out
