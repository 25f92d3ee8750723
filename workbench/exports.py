"""Training sets in the formats external trainers read: OpenAI chat JSONL, Alpaca JSON, ShareGPT JSON, CSV.

Each writer has a reader, so an export can be checked by reading it back. Every CSV the app writes goes
through csv_safe_cell, so a spreadsheet shows its cells as text and never runs one as a formula.
"""
from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, Literal

from . import jsonl
from .errors import WorkbenchError

Format = Literal["openai", "alpaca", "sharegpt", "csv"]
FORMATS: dict[str, tuple[str, str]] = {          # format -> (file suffix, mime type)
    "openai": ("jsonl", "application/jsonl"),
    "alpaca": ("json", "application/json"),
    "sharegpt": ("json", "application/json"),
    "csv": ("csv", "text/csv"),
}
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
# A spreadsheet reads a cell starting with one of = + - @ tab CR as a formula (OWASP, "CSV Injection").
# Quotes already in front count too, so a cell that really starts with ' followed by one of them round-trips.
_FORMULA_CELL = re.compile(r"'*[=+\-@\t\r]")
_QUOTED_CELL = re.compile(r"'+[=+\-@\t\r]")


def csv_safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string that would start a formula gets a leading '.

    Only strings change: numbers (a negative one too) stay numbers. read_back removes the quote again.
    """
    if isinstance(value, str) and _FORMULA_CELL.match(value):
        return "'" + value
    return value


def _csv_original_cell(value: str) -> str:
    """The cell as it was before csv_safe_cell (the inverse, for reading an export back)."""
    return value[1:] if _QUOTED_CELL.match(value) else value


def dataframe_csv(df: Any, index: bool = False) -> str:
    """A pandas DataFrame as CSV text with csv_safe_cell applied to every cell, column header and index label."""
    safe = df.map(csv_safe_cell)
    safe.columns = df.columns.map(csv_safe_cell)
    safe.columns.names = [csv_safe_cell(n) for n in df.columns.names]
    if index:
        safe.index = df.index.map(csv_safe_cell)
        safe.index.names = [csv_safe_cell(n) for n in df.index.names]
    return safe.to_csv(index=index)


def _parts(example: dict[str, Any]) -> tuple[str, str, str]:
    """(system, last user message, last assistant message) of a chat example."""
    by_role: dict[str, list[str]] = {}
    for m in example["messages"]:
        if isinstance(m.get("content"), str):
            by_role.setdefault(m["role"], []).append(m["content"])
    return ((by_role.get("system") or [""])[0], (by_role.get("user") or [""])[-1],
            (by_role.get("assistant") or [""])[-1])


def export(examples: list[dict[str, Any]], fmt: str) -> bytes:
    """The examples written in one of FORMATS."""
    if fmt == "openai":
        return "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in examples).encode("utf-8")
    if fmt == "alpaca":
        rows = []
        for ex in examples:
            system, user, assistant = _parts(ex)
            rows.append({"instruction": user, "input": "", "output": assistant, **({"system": system} if system else {})})
        return json.dumps(rows, ensure_ascii=False, indent=1).encode("utf-8")
    if fmt == "sharegpt":
        rows = [{"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]}
                                   for m in ex["messages"] if m["role"] in SHAREGPT_ROLES]} for ex in examples]
        return json.dumps(rows, ensure_ascii=False, indent=1).encode("utf-8")
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["question", "answer", "system"])
        for ex in examples:
            system, user, assistant = _parts(ex)
            writer.writerow([csv_safe_cell(cell) for cell in (user, assistant, system)])
        return buf.getvalue().encode("utf-8")
    raise WorkbenchError(f"unknown export format '{fmt}'; expected one of: {', '.join(FORMATS)}", field="format")


def read_back(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """Chat examples from an export (the inverse of export)."""
    def chat(system: str, user: str, assistant: str) -> dict[str, Any]:
        return {"messages": ([{"role": "system", "content": system}] if system else [])
                + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}

    text = data.decode("utf-8")
    if fmt == "openai":
        parsed = jsonl.parse(text)
        bad = next((line for line in parsed if line.error), None)
        if bad:
            raise WorkbenchError(bad.error, line=bad.number)
        return [line.value for line in parsed]
    if fmt == "alpaca":
        return [chat(r.get("system", ""), r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else ""),
                     r["output"]) for r in json.loads(text)]
    if fmt == "sharegpt":
        back = {v: k for k, v in SHAREGPT_ROLES.items()}
        return [{"messages": [{"role": back[t["from"]], "content": t["value"]} for t in r["conversations"]]}
                for r in json.loads(text)]
    if fmt == "csv":
        return [chat(*(_csv_original_cell(r[k]) for k in ("system", "question", "answer")))
                for r in csv.DictReader(io.StringIO(text))]
    raise WorkbenchError(f"unknown export format '{fmt}'", field="format")
