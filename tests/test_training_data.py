"""Training-data checks on crafted files, the leakage-guarded split, and exports read back."""
import json

import pytest

from workbench import exports, splits, training_data as td
from workbench.parsing import QAPair


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def ok(q="What is the limit?", a="120 requests per minute", system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": messages}


def run_check(data: bytes, **kw):
    examples, parse = td.read_jsonl(data)
    return td.check(examples, parse_findings=parse, **kw)


def findings(report, check):
    return [f for f in report.findings if f.check == check]


@pytest.mark.parametrize("bad_line, check", [
    ('"just a string"', "data_type"),
    ({"prompt": "q", "completion": "a"}, "missing_messages_list"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "message_missing_key"),
    ({"messages": [{"role": "user", "content": "q", "mood": "happy"}, {"role": "assistant", "content": "a"}]},
     "message_unrecognized_key"),
    ({"messages": [{"role": "customer", "content": "q"}, {"role": "assistant", "content": "a"}]}, "unrecognized_role"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}, "missing_content"),
    ({"messages": [{"role": "user", "content": "q"}]}, "example_missing_assistant_message"),
    ("{broken json", "invalid_json"),
])
def test_each_format_check_names_the_row(bad_line, check):
    rows = [ok(f"Question number {i}?", f"Answer {i}") for i in range(12)]
    rows.insert(4, bad_line)  # line 5
    report = run_check(jsonl(*rows))
    found = findings(report, check)
    assert found and found[0].severity == "error" and found[0].rows == [5], report.findings
    assert not report.ok


def test_counts_of_missing_system_and_user_messages():
    rows = [ok(system="Be brief.")] + [ok(f"Q{i}?", f"A{i}") for i in range(10)] + [
        {"messages": [{"role": "assistant", "content": "only me"}]}]
    report = run_check(jsonl(*rows))
    assert (report.missing_system, report.missing_user) == (11, 1)
    assert report.ok  # a missing system message is allowed


def test_token_statistics_worked_by_hand():
    # o200k: user "hello world" (2) + assistant "hello world" (2); framing 3 + 1 + 2 + 3 + 1 + 2 + 3 = 15 tokens.
    rows = [ok("hello world", "hello world")] * 3 + [ok("hello world hello world", "hello world")] * 9
    report = td.check(td.read_jsonl(jsonl(*rows))[0])
    assert report.total_tokens.min == 15 and report.total_tokens.max == 17
    assert report.assistant_tokens.mean == 2 and report.messages_per_example.median == 2
    assert report.per_example_tokens == [15] * 3 + [17] * 9
    assert report.total_tokens.p10 == 15 and report.total_tokens.p90 == 17


def test_examples_over_the_token_limit():
    rows = [ok(f"Q{i}?", "word " * (200 if i == 3 else 2)) for i in range(12)]
    report = td.check(td.read_jsonl(jsonl(*rows))[0], token_limit=100)
    assert findings(report, "over_token_limit")[0].rows == [4] and report.over_limit == [4]


def test_too_few_and_few_examples():
    assert findings(run_check(jsonl(*[ok(f"Q{i}", "A") for i in range(9)])), "too_few_examples")[0].severity == "error"
    assert findings(run_check(jsonl(*[ok(f"Q{i}", "A") for i in range(20)])), "few_examples")[0].severity == "warning"
    assert not findings(run_check(jsonl(*[ok(f"Q{i}", "A") for i in range(60)])), "few_examples")


def test_duplicates_near_duplicates_and_contradictions():
    rows = [ok(f"Unrelated question {i} about topic {i}?", f"Answer {i}") for i in range(10)]
    rows += [ok("How long is the trial?", "14 days"), ok("How long is the trial?", "14 days"),
             ok("How long is the free trial?", "30 days"), ok("Where is the status page?", "status.example")]
    report = run_check(jsonl(*rows))
    assert findings(report, "duplicate_questions")[0].rows == [11, 12]
    assert findings(report, "near_duplicate_questions")[0].rows == [11, 12, 13]
    # "14 days" against "30 days" for near-identical questions: the numbers differ.
    assert findings(report, "contradictory_answers")[0].rows == [11, 12, 13]


def test_sensitive_data_is_found_and_the_rows_named():
    rows = [ok(f"Q{i}?", f"A{i}") for i in range(10)]
    rows += [ok("Who do I mail?", "Write to jane.doe@acme.com"), ok("Support line?", "Call +1 415 555 0132"),
             ok("Card on file?", "4111 1111 1111 1111"), ok("Key?", "Use sk-proj-abcdefghijklmnopqrstuvwxyz123"),
             ok("AWS?", "AKIAIOSFODNN7EXAMPLE"), ok("Not a card?", "Order 1234 5678 9012 3456 shipped"),
             ok("Docs mail?", "billing@tallyboard.example")]
    report = run_check(jsonl(*rows))
    kinds = {f.message.split(":")[0]: f.rows for f in findings(report, "sensitive_data")}
    assert kinds == {"email address": [11], "phone number": [12], "payment card number": [13],
                     "OpenAI-style API key": [14], "AWS access key": [15]}


def test_to_examples_skips_unanswerable_and_adds_the_system_prompt():
    pairs = [QAPair("Q1", "A1"), QAPair("Q2", ""), QAPair("Q3", "A3", system="Own system")]
    examples = td.to_examples(pairs, "Default system")
    assert [e["messages"][0]["content"] for e in examples] == ["Default system", "Own system"]
    assert len(examples) == 2


def _pair(i, question, answer="a", group="", doc_ids=()):
    return QAPair(question, answer, list(doc_ids), group=group or f"g{i}", id=f"p{i}")


def test_leakage_guard_keeps_paraphrases_and_shared_passages_together():
    pairs = [_pair(i, f"Distinct question number {i} about subject {i * 7}?") for i in range(40)]
    pairs += [_pair(40, "How do I reset my password?", group="pw"), _pair(41, "Reset password how?", group="pw"),
              _pair(42, "Where is the invoice due date set?", "30 days"),
              _pair(43, "What is the default payment term?", "30 days"),
              _pair(44, "How long is the free trial for teams?"), _pair(45, "How long is the free trial for teams"),
              _pair(46, "Who founded the company?", answer="")]
    passages = {"p42": "invoicing.md#3", "p43": "invoicing.md#3"}
    for seed in range(6):
        split = splits.split_pairs(pairs, 0.3, seed, passages, dev_share=0.25)
        side = {i: name for name in splits.SIDES for i in getattr(split, name)}
        assert side["p40"] == side["p41"] and side["p42"] == side["p43"] and side["p44"] == side["p45"]
        assert side["p46"] == "test"  # unanswerable questions are held out
        assert sorted(split.train + split.dev + split.test) == sorted(p.id for p in pairs)  # each pair on one side
    assert split.guarded_links == 3
    answered = [p for p in pairs if p.answer]
    held = sum(1 for p in answered if p.id in split.test)
    assert abs(held - 0.3 * len(answered)) <= 2
    # dev is carved from what test left: a quarter of the 46 - 14 = 32 remaining answered pairs, about 8.
    assert abs(len(split.dev) - 0.25 * (len(answered) - held)) <= 2
    forward = splits.split_pairs(pairs, 0.3, 1, passages)
    backward = splits.split_pairs(pairs[::-1], 0.3, 1, passages)
    assert (set(forward.test), set(forward.dev)) == (set(backward.test), set(backward.dev))  # input order is moot


def test_answer_passages_find_the_chunk_holding_the_answer():
    docs = {"inv.md": {"title": "Invoicing", "text": "# Invoicing\n\nIntro.\n\n## Due dates\n\nInvoices are due in "
                                                     "30 days by default.\n\n## Taxes\n\nTax is added per line."}}
    pairs = [QAPair("When due?", "due in 30 days", ["inv.md"], id="a"), QAPair("Tax?", "added per line", ["inv.md"], id="b"),
             QAPair("CEO?", "", [], id="c")]
    assert splits.answer_passages(pairs, docs) == {"a": "inv.md#1", "b": "inv.md#2"}


@pytest.mark.parametrize("fmt", list(exports.FORMATS))
def test_exports_read_back(fmt):
    examples = [ok("Q1, with a comma?", "A1 \"quoted\"", system="Be brief."), ok("Q2 ünïcode?", "A2\nsecond line")]
    data = exports.export(examples, fmt)
    assert exports.read_back(data, fmt) == examples
    if fmt == "alpaca":
        assert json.loads(data)[0] == {"instruction": "Q1, with a comma?", "input": "", "output": "A1 \"quoted\"",
                                       "system": "Be brief."}
    if fmt == "sharegpt":
        assert [t["from"] for t in json.loads(data)[0]["conversations"]] == ["system", "human", "gpt"]


def test_the_openai_export_passes_the_checks():
    examples = [ok(f"Q{i}?", f"A{i}") for i in range(12)]
    assert run_check(exports.export(examples, "openai")).ok


def test_chinese_duplicates_near_duplicates_and_contradictions():
    rows = [ok(f"Unrelated question {i} about topic {i}?", f"Answer {i}") for i in range(10)]
    rows += [ok("如何重置我的密码？", "在设置页面重置"), ok("如何重置我的密码", "在设置页面重置"),
             ok("如何才能重置我的密码", "联系客服"), ok("发票什么时候到期？", "30天内")]
    report = run_check(jsonl(*rows))
    assert findings(report, "duplicate_questions")[0].rows == [11, 12]
    assert findings(report, "near_duplicate_questions")[0].rows == [11, 12, 13]
    assert findings(report, "contradictory_answers")[0].rows == [11, 12, 13]


def test_near_duplicates_are_found_once_per_check(monkeypatch):
    calls = []
    monkeypatch.setattr(td, "near_duplicate_pairs", lambda texts, *a: calls.append(1) or [])
    run_check(jsonl(*[ok(f"Q{i}", "A") for i in range(12)]))
    assert len(calls) == 1
