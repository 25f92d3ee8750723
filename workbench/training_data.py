"""Fine-tuning data: chat examples from Q&A pairs, the published format checks and more, token statistics.

The format checks follow OpenAI's chat fine-tuning data-prep cookbook (data type, missing messages list,
message missing key, unrecognized key, unrecognized role, missing content, example without an assistant
message; examples missing a system or user message counted). Beyond them: exact and near-duplicate
questions, contradictory answers, sensitive data, and too few examples, each finding naming its rows.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np

from . import jsonl, tokens
from .parsing import QAPair

ROLES = {"system", "user", "assistant", "function", "tool"}
MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id"}
MIN_EXAMPLES, RECOMMENDED_EXAMPLES = 10, 50
FORMAT_ERRORS = {
    "data_type": "not a JSON object",
    "missing_messages_list": "no 'messages' list",
    "message_missing_key": "a message without 'role' or 'content'",
    "message_unrecognized_key": "a message with a key other than role, content, name, weight, function_call, "
                                "tool_calls or tool_call_id",
    "unrecognized_role": "a role other than system, user, assistant, function or tool",
    "missing_content": "a message with empty or non-text content",
    "example_missing_assistant_message": "no assistant message to learn from",
}
NEAR_DUPLICATE = 0.8            # token-set Jaccard of two questions at or above which they are near-duplicates


@dataclass
class Finding:
    check: str
    severity: str                # "error" (the provider would reject the file), "warning", "info"
    message: str
    rows: list[int] = field(default_factory=list)      # 1-based example numbers (lines of the JSONL)


@dataclass
class TokenStats:
    count: int
    min: float
    max: float
    mean: float
    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, values: list[int]) -> TokenStats:
        if not values:
            return cls(0, 0, 0, 0, 0, 0, 0)
        arr = np.asarray(values, dtype=float)
        return cls(len(values), float(arr.min()), float(arr.max()), round(float(arr.mean()), 2),
                   float(np.median(arr)), float(np.quantile(arr, 0.1)), float(np.quantile(arr, 0.9)))


@dataclass
class DataReport:
    examples: int
    findings: list[Finding]
    format_errors: dict[str, int]
    missing_system: int
    missing_user: int
    messages_per_example: TokenStats
    total_tokens: TokenStats
    assistant_tokens: TokenStats
    per_example_tokens: list[int]
    per_example_assistant_tokens: list[int]
    over_limit: list[int]
    token_limit: int

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def to_examples(pairs: Iterable[QAPair], system_prompt: str = "") -> list[dict[str, Any]]:
    """One chat example per answered pair (unanswerable questions are not training material)."""
    out = []
    for p in pairs:
        if not p.answer:
            continue
        system = p.system or system_prompt
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}]
        out.append({"messages": messages})
    return out


def read_jsonl(data: bytes) -> tuple[list[Any], list[Finding]]:
    """Parse a chat JSONL training file; a line that is not JSON is a finding, not a crash."""
    examples, findings = [], []
    for line in jsonl.parse(data.decode("utf-8", errors="replace")):
        examples.append(line.value)
        if line.error:
            findings.append(Finding("invalid_json", "error", f"line {line.number}: {line.error}", [line.number]))
    return examples, findings


def format_errors(examples: list[Any]) -> tuple[dict[str, list[int]], int, int]:
    """The cookbook's format checks: rows per error type, and rows missing a system or user message."""
    errors: dict[str, list[int]] = {}
    missing_system = missing_user = 0

    def add(kind: str, row: int) -> None:
        errors.setdefault(kind, []).append(row)

    for row, ex in enumerate(examples, 1):
        if ex is None:
            continue
        if not isinstance(ex, dict):
            add("data_type", row)
            continue
        messages = ex.get("messages")
        if not isinstance(messages, list) or not messages:
            add("missing_messages_list", row)
            continue
        for message in messages:
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                add("message_missing_key", row)
                if not isinstance(message, dict):
                    continue
            if any(k not in MESSAGE_KEYS for k in message):
                add("message_unrecognized_key", row)
            if message.get("role") not in ROLES:
                add("unrecognized_role", row)
            content = message.get("content")
            if (not content or not isinstance(content, str)) and not message.get("function_call") \
                    and not message.get("tool_calls"):
                add("missing_content", row)
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            add("example_missing_assistant_message", row)
        roles = {m.get("role") for m in messages if isinstance(m, dict)}
        missing_system += "system" not in roles
        missing_user += "user" not in roles
    return {k: sorted(set(v)) for k, v in errors.items()}, missing_system, missing_user


_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}[\s.-]\d{3,4}[\s.-]\d{3,4}(?![\w.])")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_SECRETS = [
    ("OpenAI-style API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
    ("AWS access key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("bearer token", re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/-]{20,}=*")),
    ("key or password assignment", re.compile(r"\b(?:api[_-]?key|secret|password|passwd|token)\s*[:=]\s*\S{8,}", re.I)),
]


def _luhn(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return total % 10 == 0


def sensitive_kinds(text: str) -> list[str]:
    """What kinds of sensitive data a text contains (emails, phone numbers, card numbers, keys and tokens)."""
    kinds = []
    emails = [e for e in _EMAIL.findall(text) if not e.lower().endswith((".example", "example.com", "example.org"))]
    if emails:
        kinds.append("email address")
    numbers = _CARD.findall(text)
    if any(_luhn(m) for m in numbers):
        kinds.append("payment card number")
    for number in numbers:  # 13 to 19 digits are not a phone number, card or not
        text = text.replace(number, " ")
    if _PHONE.search(text):
        kinds.append("phone number")
    kinds += [name for name, pattern in _SECRETS if pattern.search(text)]
    return kinds


def example_count_issue(n: int) -> tuple[str, str, str] | None:
    """(check, severity, message) when n training examples are too few, else None."""
    if n < MIN_EXAMPLES:
        return "too_few_examples", "error", f"{n} training examples: fine-tuning needs at least {MIN_EXAMPLES} " \
                                            f"({RECOMMENDED_EXAMPLES} to 100 recommended)"
    if n < RECOMMENDED_EXAMPLES:
        return "few_examples", "warning", f"{n} training examples: {RECOMMENDED_EXAMPLES} to 100 is the recommended minimum"
    return None


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def near_duplicate_pairs(texts: list[str], threshold: float = NEAR_DUPLICATE) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) of texts whose word sets overlap at or above the threshold (sparse, so it scales)."""
    from scipy import sparse

    sets = [_words(t) for t in texts]
    vocab = {w: k for k, w in enumerate(sorted(set().union(*sets)))} if sets else {}
    rows = [i for i, s in enumerate(sets) for _ in s]
    cols = [vocab[w] for s in sets for w in s]
    if not rows:
        return []
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(vocab)))
    inter = (m @ m.T).tocoo()
    sizes = np.asarray(m.sum(axis=1)).ravel()
    out = []
    for i, j, n in zip(inter.row, inter.col, inter.data):
        if i < j:
            jac = n / (sizes[i] + sizes[j] - n)
            if jac >= threshold:
                out.append((int(i), int(j), float(jac)))
    return sorted(out)


def normalized(text: str) -> str:
    """Lower-cased words joined by single spaces: two questions that differ only in case and punctuation match."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def check(examples: list[Any], model: str = "gpt-4o-mini", token_limit: int = 65536,
          parse_findings: list[Finding] | None = None) -> DataReport:
    """Every check on a list of chat examples (parsed JSONL lines; None for lines that were not JSON)."""
    findings = list(parse_findings or [])
    errors, missing_system, missing_user = format_errors(examples)
    for kind, rows in errors.items():
        findings.append(Finding(kind, "error", f"{len(rows)} example(s): {FORMAT_ERRORS[kind]}", rows))
    valid = [(row, ex) for row, ex in enumerate(examples, 1)
             if ex is not None and row not in {r for rows in errors.values() for r in rows}]
    per_example, assistant, n_messages = [], [], []
    for _, ex in valid:
        messages = [m for m in ex["messages"] if isinstance(m.get("content"), str)]
        per_example.append(tokens.count_messages(messages, model))
        assistant.append(sum(tokens.count(m["content"], model) for m in messages if m["role"] == "assistant"))
        n_messages.append(len(ex["messages"]))
    over = [row for (row, _), n in zip(valid, per_example) if n > token_limit]
    if over:
        findings.append(Finding("over_token_limit", "warning",
                                f"{len(over)} example(s) over the {token_limit:,}-token limit per example; they will "
                                "be truncated", over))
    n = len(examples)
    issue = example_count_issue(n)
    if issue:
        findings.append(Finding(*issue))
    if missing_system:
        findings.append(Finding("missing_system", "info", f"{missing_system} example(s) without a system message"))
    if missing_user:
        findings.append(Finding("missing_user", "warning", f"{missing_user} example(s) without a user message"))
    findings += _content_findings(valid)
    return DataReport(
        examples=n, findings=findings, format_errors={k: len(v) for k, v in errors.items()},
        missing_system=missing_system, missing_user=missing_user,
        messages_per_example=TokenStats.of(n_messages), total_tokens=TokenStats.of(per_example),
        assistant_tokens=TokenStats.of(assistant), per_example_tokens=per_example,
        per_example_assistant_tokens=assistant, over_limit=over,
        token_limit=token_limit)


def _last(ex: dict[str, Any], role: str) -> str:
    texts = [m["content"] for m in ex["messages"] if m.get("role") == role and isinstance(m.get("content"), str)]
    return texts[-1] if texts else ""


def _content_findings(valid: list[tuple[int, dict[str, Any]]]) -> list[Finding]:
    findings: list[Finding] = []
    rows = [row for row, _ in valid]
    questions = [_last(ex, "user") for _, ex in valid]
    answers = [_last(ex, "assistant") for _, ex in valid]
    by_text: dict[str, list[int]] = {}
    for row, q in zip(rows, questions):
        by_text.setdefault(normalized(q), []).append(row)
    exact = [group for text, group in by_text.items() if text and len(group) > 1]
    if exact:
        findings.append(Finding("duplicate_questions", "warning",
                                f"{sum(len(g) for g in exact)} examples repeat {len(exact)} question(s) word for word",
                                sorted(r for g in exact for r in g)))
    near = [(i, j) for i, j, _ in near_duplicate_pairs(questions) if normalized(questions[i]) != normalized(questions[j])]
    if near:
        findings.append(Finding("near_duplicate_questions", "info",
                                f"{len(near)} pair(s) of near-identical questions (paraphrases are fine; copies "
                                "weigh a fact more)", sorted({rows[i] for i, _ in near} | {rows[j] for _, j in near})))
    contradictions = set()
    for i, j, _ in near_duplicate_pairs(questions):
        if _disagree(answers[i], answers[j]):
            contradictions.update((rows[i], rows[j]))
    for group in exact:
        group_answers = [answers[rows.index(r)] for r in group]
        if any(_disagree(group_answers[0], other) for other in group_answers[1:]):
            contradictions.update(group)
    if contradictions:
        findings.append(Finding("contradictory_answers", "warning",
                                "the same or near-same question has different answers; check which is right",
                                sorted(contradictions)))
    sensitive: dict[str, list[int]] = {}
    for (row, ex) in valid:
        text = " ".join(m["content"] for m in ex["messages"] if isinstance(m.get("content"), str))
        for kind in sensitive_kinds(text):
            sensitive.setdefault(kind, []).append(row)
    for kind, found in sensitive.items():
        findings.append(Finding("sensitive_data", "warning",
                                f"{kind}: {len(found)} example(s); a fine-tuned model can repeat it to anyone", found))
    return findings


def _disagree(a: str, b: str) -> bool:
    """Two answers disagree if they differ and share few words, or name different numbers."""
    if normalized(a) == normalized(b):
        return False
    return _answer_f1(a, b) < 0.5 or set(re.findall(r"\d+(?:\.\d+)?", a)) != set(re.findall(r"\d+(?:\.\d+)?", b))


def _answer_f1(a: str, b: str) -> float:
    wa, wb = normalized(a).split(), normalized(b).split()
    if not wa or not wb:
        return float(wa == wb)
    common = sum(min(wa.count(w), wb.count(w)) for w in set(wa))
    if not common:
        return 0.0
    p, r = common / len(wa), common / len(wb)
    return 2 * p * r / (p + r)


def token_stats_table(report: DataReport) -> list[dict[str, Any]]:
    return [{"measure": name, **asdict(stats)} for name, stats in (
        ("messages per example", report.messages_per_example), ("total tokens per example", report.total_tokens),
        ("assistant tokens per example", report.assistant_tokens))]

