"""JSONL is split on newlines only: Unicode line separators inside JSON strings keep their rows whole."""
import json

from click.testing import CliRunner

from workbench import exports, jsonl, parsing, training_data
from workbench.cli import main

# U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR, U+0085 NEXT LINE, form feed, vertical tab: all legal
# inside a JSON string written with ensure_ascii=False, and all line breaks to str.splitlines().
SEPARATORS = "\u2028\u2029\u0085\x0c\x0b\x1c"
TEXT = f"First part.{SEPARATORS}Second part."


def _rows(rows):
    return "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("utf-8")


def test_lines_split_on_newline_only():
    assert [n for n, _ in jsonl.lines("a\nb\r\nc")] == [1, 2, 3]
    assert [line for _, line in jsonl.lines(f"x{SEPARATORS}y\nz\r\n")] == [f"x{SEPARATORS}y", "z", ""]
    parsed = jsonl.parse('{"a": 1}\n\nnot json\n')
    assert [(p.number, p.value, p.error) for p in parsed] == [
        (1, {"a": 1}, None), (3, None, "malformed JSON (Expecting value at column 1)")]


def test_documents_and_pairs_with_unicode_separators_are_read_whole():
    docs = parsing.parse_document_file("docs.jsonl", _rows([{"id": "d1", "text": TEXT}, {"id": "d2", "text": "Two."}]))
    assert not [p for p in docs.problems if p.level == "error"]
    assert [d.text for d in docs.documents] == [TEXT, "Two."]
    qa = parsing.parse_qa_file("qa.jsonl", _rows([{"question": "Q?", "answer": TEXT}, {"question": "R?", "answer": "r"}]))
    assert [(p.answer, p.line) for p in qa.pairs] == [(TEXT, 1), ("r", 2)] and not qa.problems


def test_chat_training_files_tokens_and_exports_keep_rows_whole(tmp_path):
    example = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": TEXT}]}
    examples, findings = training_data.read_jsonl(_rows([example, example]))
    assert examples == [example, example] and findings == []
    data = exports.export([example], "openai")
    assert exports.read_back(data, "openai") == [example]
    path = tmp_path / "train.jsonl"
    path.write_bytes(_rows([example]))
    result = CliRunner().invoke(main, ["tokens", "--chat", str(path)])
    assert result.exit_code == 0, result.output
