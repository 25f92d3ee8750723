"""Fine-tuning data: chat examples from Q&A pairs, the published format checks and more, token statistics.

The format checks follow OpenAI's chat fine-tuning data-prep cookbook (data type, missing messages list,
message missing key, unrecognized key, unrecognized role, missing content, example without an assistant
message; examples missing a system or user message counted). Beyond them: exact and near-duplicate
questions, contradictory answers, sensitive data, and too few examples, each finding naming its rows.
"""
from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np

from . import jsonl, tokens
from .shapes import QAPair
from .text import normalize, words

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


def _word_sets(texts: list[str]) -> list[frozenset[str]]:
    return [frozenset(words(t)) for t in texts]


def _by_rarity(*collections: list[frozenset[str]]) -> list[list[list[int]]]:
    """Each set as the sorted ranks of its words in one global order, rarest first (ties by word): the
    order that makes a prefix hold a set's rarest words, so few sets share a prefix word by chance."""
    counts = Counter(w for sets in collections for s in sets for w in s)
    rank = {w: r for r, w in enumerate(sorted(counts, key=lambda w: (counts[w], w)))}
    return [[sorted(rank[w] for w in s) for s in sets] for sets in collections]


# The filters below bound the overlap two sets need; rounding in t * |s| must never tighten a bound.
_SLACK = 1e-9


def _prefix(size: int, least_overlap: float) -> int:
    """How many of a set's rarest words hold the first word it shares with any set it shares at least
    `least_overlap` words with: the shared words all come at or after the first, so it is at most
    least_overlap - 1 words from the end."""
    return max(0, min(size, size - math.ceil(least_overlap - _SLACK) + 1))


def near_duplicate_pairs(texts: list[str], threshold: float = NEAR_DUPLICATE) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard), i < j, sorted, of texts whose word sets overlap at or above the threshold.

    Exact: every such pair and no other, as comparing all pairs would find, in about linear time on
    questions. An all-pairs similarity join (AllPairs with PPJoin's positional filter): sets taken from
    the smallest, each compared only with earlier ones that share a word of its prefix, are not too
    small, and can still share enough words after the first shared one; their Jaccard then computed."""
    sets = _word_sets(texts)
    (ranked,) = _by_rarity(sets)
    sizes = [len(s) for s in sets]
    index: dict[int, list[tuple[int, int]]] = {}   # word -> (set, the word's position in it), smallest sets first
    start: dict[int, int] = {}                     # word -> its first entry not too small for the sets to come
    ratio = threshold / (1 + threshold) if threshold > 0 else 0.0
    out = []
    for x in sorted((i for i in range(len(sets)) if sizes[i]), key=lambda i: (sizes[i], i)):
        sx, words_x, set_x = sizes[x], ranked[x], sets[x]
        smallest = threshold * sx - _SLACK         # Jaccard <= |y| / |x| when |y| <= |x|
        seen: set[int] = set()
        for i, w in enumerate(words_x[:_prefix(sx, threshold * sx)]):
            entries = index.get(w)
            if not entries:
                continue
            k = start.get(w, 0)
            while k < len(entries) and sizes[entries[k][0]] < smallest:
                k += 1
            start[w] = k
            for y, j in entries[k:]:
                if y in seen:
                    continue
                seen.add(y)                        # w is the first word x and y share, so they share at most
                sy = sizes[y]                      # min(sx - i, sy - j) words, and need ratio * (sx + sy)
                if sx - i < ratio * (sx + sy) - _SLACK or sy - j < ratio * (sx + sy) - _SLACK:
                    continue
                common = len(set_x & sets[y])
                jac = common / (sx + sy - common)
                if jac >= threshold:
                    out.append((y, x, jac) if y < x else (x, y, jac))
        # A later set is at least as large, so it needs 2t / (1 + t) * |x| shared words: a shorter prefix.
        for j, w in enumerate(words_x[:_prefix(sx, 2 * ratio * sx)]):
            index.setdefault(w, []).append((x, j))
    return sorted(out)


def near_duplicate_pairs_between(a_texts: list[str], b_texts: list[str], threshold: float = NEAR_DUPLICATE
                                 ) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard), sorted, of a_texts[i] and b_texts[j] whose word sets overlap at or above the
    threshold: the pairs near_duplicate_pairs(a_texts + b_texts) finds across the two lists (exact too),
    without comparing texts within either list."""
    a_sets, b_sets = _word_sets(a_texts), _word_sets(b_texts)
    a_ranked, b_ranked = _by_rarity(a_sets, b_sets)
    index: dict[int, tuple[list[int], list[tuple[int, int]]]] = {}   # word -> (sizes, (set, position)), by size
    for y in sorted((j for j in range(len(b_sets)) if b_sets[j]), key=lambda j: (len(b_sets[j]), j)):
        sy = len(b_sets[y])
        for j, w in enumerate(b_ranked[y][:_prefix(sy, threshold * sy)]):
            sizes, entries = index.setdefault(w, ([], []))
            sizes.append(sy)
            entries.append((y, j))
    ratio = threshold / (1 + threshold) if threshold > 0 else 0.0
    out = []
    for x, set_x in enumerate(a_sets):
        sx = len(set_x)
        smallest = threshold * sx - _SLACK                          # Jaccard <= the smaller size / the larger
        largest = sx / threshold + _SLACK if threshold > 0 else math.inf
        seen: set[int] = set()
        for i, w in enumerate(a_ranked[x][:_prefix(sx, threshold * sx)]):
            if w not in index:
                continue
            sizes, entries = index[w]
            for y, j in entries[bisect.bisect_left(sizes, smallest):bisect.bisect_right(sizes, largest)]:
                if y in seen:
                    continue
                seen.add(y)                                         # as in near_duplicate_pairs
                sy = len(b_sets[y])
                if sx - i < ratio * (sx + sy) - _SLACK or sy - j < ratio * (sx + sy) - _SLACK:
                    continue
                common = len(set_x & b_sets[y])
                jac = common / (sx + sy - common)
                if jac >= threshold:
                    out.append((x, y, jac))
    return sorted(out)




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
    keys = [normalize(q) for q in questions]
    by_text: dict[str, list[int]] = {}
    for row, key in zip(rows, keys):
        by_text.setdefault(key, []).append(row)
    exact = [group for text, group in by_text.items() if text and len(group) > 1]
    if exact:
        findings.append(Finding("duplicate_questions", "warning",
                                f"{sum(len(g) for g in exact)} examples repeat {len(exact)} question(s) word for word",
                                sorted(r for g in exact for r in g)))
    similar = near_duplicate_pairs(questions)
    near = [(i, j) for i, j, _ in similar if keys[i] != keys[j]]
    if near:
        findings.append(Finding("near_duplicate_questions", "info",
                                f"{len(near)} pair(s) of near-identical questions (paraphrases are fine; copies "
                                "weigh a fact more)", sorted({rows[i] for i, _ in near} | {rows[j] for _, j in near})))
    contradictions = set()
    for i, j, _ in similar:
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
    if normalize(a) == normalize(b):
        return False
    return _answer_f1(a, b) < 0.5 or set(re.findall(r"\d+(?:\.\d+)?", a)) != set(re.findall(r"\d+(?:\.\d+)?", b))


def _answer_f1(a: str, b: str) -> float:
    wa, wb = words(a), words(b)
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

