"""Question/answer pairs generated from the workspace's documents: planned, generated, checked, reviewed.

The configured chat model writes each pair from one indexed chunk, its reply constrained to a JSON schema
(a llama.cpp grammar locally, structured outputs on servers that have them) and read by a strict parser
with one retry for servers that ignore the schema. A pair is kept only if it passes every check: its
answer is in its chunk (a span, or most of its words), its question does not give the answer away, it
is not a near-duplicate of a pair already there, and an unanswerable question is not answered by the
passages retrieval finds for it. Every candidate is stored as soon as it is made (a stopped or crashed
run resumes where it ended, making no pair twice), with its document, chunk, generator and kind; the
ones a person accepts join the workspace's pairs, marked synthetic, with the pairs of one chunk in one
group so the split keeps them on one side.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Callable

from pydantic import Field, field_validator

from . import corpus, index, rag, tokens
from .config import Strict
from .errors import WorkbenchError
from .parsing import QAPair
from .text import content_words, normalize
from .training_data import NEAR_DUPLICATE, near_duplicate_pairs_between
from .workspace import Workspace

KINDS = ("factual", "paraphrase", "changed", "unanswerable")
GENERATED_SOURCE = "generated"            # the source of every synthetic pair in the workspace
SUPPORT_SHARE = 0.8                       # of the answer's content words found in its chunk
GIVEAWAY_SHARE = 0.8                      # of the answer's content words already in the question
ABOUT_SHARE = 0.5                         # of the question's content words found in its passage
CLOSE_RELEVANCE, CLOSE_COVERAGE = 0.6, 0.6   # an "unanswerable" question this close to a passage is not kept
MIN_CHUNK_TOKENS = 20
CHANGED_OVERLAP = 0.2                     # content-word Jaccard of two versions of one passage

QUESTION_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["question"],
    "properties": {"question": {"type": "string", "maxLength": 160}}}
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["supported"],
    "properties": {"supported": {"type": "boolean"}}}


class GenerationSettings(Strict):
    count: Annotated[int, Field(ge=1, le=10_000)] = 20
    kinds: dict[str, Annotated[float, Field(ge=0, le=1)]] = {"factual": 0.6, "paraphrase": 0.2, "unanswerable": 0.2}
    docs: list[str] = []                  # document ids; empty: every document
    seed: int = 0
    judge: bool = False                   # also ask the chat model whether each answer is supported

    @field_validator("kinds")
    @classmethod
    def _known(cls, kinds: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
        if not any(v > 0 for v in kinds.values()):
            raise ValueError("at least one kind needs a share above 0")
        return kinds


def settings_of(**values: Any) -> GenerationSettings:
    """Settings from a form or the command line; a bad value is a WorkbenchError naming the field."""
    from pydantic import ValidationError

    from .config import validation_error

    try:
        return GenerationSettings(**values)
    except ValidationError as exc:
        raise validation_error(exc, GenerationSettings, "generation settings", None) from None


def parse_kinds(text: str) -> dict[str, float]:
    """`factual=0.6,paraphrase=0.2,unanswerable=0.2` as shares by kind."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value) if sep else 1.0
        except ValueError:
            raise WorkbenchError(f"'{part}' is not kind=share (e.g. factual=0.6)", field="kinds") from None
    return out


def counts_by_kind(settings: GenerationSettings) -> dict[str, int]:
    """How many of each kind: the shares of `count`, rounded by largest remainder; paraphrases at most
    as many as the factual questions they rephrase."""
    total = sum(settings.kinds.values())
    exact = {k: settings.count * v / total for k, v in settings.kinds.items() if v > 0}
    out = {k: math.floor(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), KINDS.index(k)))[:settings.count - sum(out.values())]:
        out[k] += 1
    while out.get("paraphrase", 0) > out.get("factual", 0):
        out["paraphrase"] -= 1
        out["factual"] = out.get("factual", 0) + 1
    return out


# --- the plan: which chunk each pair comes from -----------------------------------------------------

@dataclass
class Task:
    position: int
    kind: str
    chunk: dict[str, Any]
    older: dict[str, Any] | None = None   # changed: the earlier version of the passage
    source: int | None = None             # paraphrase: the position of the factual question it rephrases


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_VERSION = re.compile(r"\b(?:v|version\s+|release\s+|[A-Z][A-Za-z]+\s)(\d+\.\d+(?:\.\d+)?)\b")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_TEXT_DATE = re.compile(r"\b(\d{1,2})\s+(" + "|".join(_MONTHS) + r")\s+(\d{4})\b", re.IGNORECASE)


def _markers(text: str) -> list[tuple[int, ...]]:
    """The versions ("Tallyboard 2.5", v3.1.0) and dates (2024-05-01, 7 March 2023) in a text, as
    comparable tuples (a version as (0, major, minor, ...), a date as (year, month, day))."""
    out = [(0, *(int(x) for x in m.group(1).split("."))) for m in _VERSION.finditer(text)]
    out += [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for m in _ISO_DATE.finditer(text)]
    out += [(int(m.group(3)), _MONTHS.index(m.group(2).lower()) + 1, int(m.group(1))) for m in _TEXT_DATE.finditer(text)]
    return out


def _version(chunk: dict[str, Any]) -> tuple[int, ...] | None:
    """A passage's version: the newest version named in its title and headings, else in its text."""
    found = _markers(f"{chunk['title']} {chunk.get('heading_path', '')}") or _markers(chunk["text"])
    versions = [m for m in found if m[0] == 0] or found
    return max(versions) if versions else None


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:[.,]\d+)?", text))


def changed_passages(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(older, newer) chunks of two documents on the same topic whose versions or dates differ and whose
    figures differ: where an answer may have changed between documents or versions."""
    dated = [(c, _version(c), content_words(c["text"])) for c in chunks]
    dated = [d for d in dated if d[1] is not None]
    out = []
    for i, (a, va, wa) in enumerate(dated):
        best, best_j = 0.0, None
        for j, (b, vb, wb) in enumerate(dated):
            if j == i or b["doc_id"] == a["doc_id"] or vb <= va or len(vb) != len(va) and (vb[0] == 0) != (va[0] == 0):
                continue
            overlap = len(wa & wb) / max(1, len(wa | wb))
            if overlap > best and _numbers(a["text"]) != _numbers(b["text"]):
                best, best_j = overlap, j
        if best_j is not None and best >= CHANGED_OVERLAP:
            out.append((a, dated[best_j][0]))
    return out


def plan(chunks: list[dict[str, Any]], settings: GenerationSettings) -> tuple[list[Task], list[str]]:
    """The tasks of a run, fixed by the seed (so a resumed run asks for the same pairs), and notes."""
    unknown = sorted(set(settings.docs) - {c["doc_id"] for c in chunks})
    if unknown:
        known = sorted({c["doc_id"] for c in chunks})
        raise WorkbenchError(f"unknown document(s) {', '.join(unknown)}; indexed: {', '.join(known[:30])}"
                             + (" ..." if len(known) > 30 else ""), field="docs")
    chosen = [c for c in chunks if (not settings.docs or c["doc_id"] in settings.docs)
              and c["tokens"] >= MIN_CHUNK_TOKENS]
    if not chosen:
        raise WorkbenchError("no indexed passage to generate from" + (" in the documents chosen" if settings.docs
                                                                       else "; build the index first"))
    rng = random.Random(settings.seed)
    counts = counts_by_kind(settings)
    notes: list[str] = []
    tasks: list[Task] = []

    def draw(n: int) -> list[dict[str, Any]]:
        order = rng.sample(chosen, len(chosen))
        return [order[i % len(order)] for i in range(n)]

    for chunk in draw(counts.get("factual", 0)):
        tasks.append(Task(len(tasks), "factual", chunk))
    factual = [t for t in tasks if t.kind == "factual"]
    for t in factual[:counts.get("paraphrase", 0)]:
        tasks.append(Task(len(tasks), "paraphrase", t.chunk, source=t.position))
    if counts.get("changed"):
        found = changed_passages(chosen)
        rng.shuffle(found)
        if len(found) < counts["changed"]:
            notes.append(f"{len(found)} passage(s) whose versions or dates differ between documents, for "
                         f"{counts['changed']} changed-answer question(s) asked")
        for older, newer in found[:counts["changed"]]:
            tasks.append(Task(len(tasks), "changed", newer, older=older))
    for chunk in draw(counts.get("unanswerable", 0)):
        tasks.append(Task(len(tasks), "unanswerable", chunk))
    return tasks, notes


def indexed_chunks(ws: Workspace, embedder: Any = None) -> list[dict[str, Any]]:
    """The chunks of the index (built first if it is missing or stale)."""
    from . import providers

    if index.index_meta(ws) is None or index.index_is_stale(ws):
        index.build_index(ws, embedder or providers.get_embedder())
    with ws.db() as db:
        return [dict(r) for r in db.execute("SELECT id, doc_id, title, heading_path, text, tokens, content_sha256 "
                                            "FROM chunks ORDER BY id")]


# --- preview ------------------------------------------------------------------------------------------

@dataclass
class Preview:
    requests: int
    input_tokens: int
    output_tokens: int                    # at most: every reply at the output limit
    cost_usd: float | None
    seconds: float | None
    basis: str                            # what the cost or time rests on
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)


def preview(tasks: list[Task], chat: Any, book: Any = None, speed: dict[str, Any] | None = None,
            prompts: rag.Prompts | None = None, notes: list[str] | None = None) -> Preview:
    """Tokens in and out of a run before it starts, and its price (hosted) or time (a local model: its
    measured speed, else the planning figures of configs/estimate.yaml)."""
    prompts = prompts or rag.load_prompts()
    from .pricing import load_pricing

    book = book or load_pricing()
    gen = prompts.generation
    n_in = sum(tokens.count_messages(_messages(t, prompts, t.chunk["text"][:80] if t.kind == "paraphrase" else None))
               for t in tasks)
    n_out = len(tasks) * gen.max_output_tokens
    counts = {k: sum(1 for t in tasks if t.kind == k) for k in KINDS if any(t.kind == k for t in tasks)}
    cost, seconds, basis = None, None, ""
    if chat.offline:
        cost = 0.0
        if speed:
            per = speed["ttft_ms"] / 1000 * len(tasks) + n_in / 1000 * speed["ms_per_1k_prompt_tokens"] / 1000 \
                + n_out / speed["output_tokens_per_s"]
            seconds, basis = per, (f"{chat.label} runs locally, free; time at its speed measured on this machine "
                                   f"({speed['output_tokens_per_s']:.0f} tokens/s, {speed['n']} answers), every reply "
                                   "at the output limit")
        else:
            from .scenario import load_estimate_config

            lat = load_estimate_config().latency.models.get("smollm2-135m-lora-local")
            if lat is not None:
                seconds = (lat.ttft_ms / 1000 * len(tasks) + n_in / 1000 * lat.ms_per_1k_prompt_tokens / 1000
                           + n_out / lat.output_tokens_per_s)
            basis = (f"{chat.label} runs locally, free; time from the tiny model's speed measured on a 2-core "
                     "machine (run Compare to measure this one), every reply at the output limit")
    else:
        price = rag.model_prices(book, chat.model_id)
        if price:
            cost = (n_in * price[0] + n_out * price[1]) / 1e6
            basis = f"{chat.model_id} at ${price[0]}/{price[1]} per 1M tokens in/out, every reply at the output limit"
        else:
            basis = f"no price for {chat.model_id}; add it as a custom price on the Estimate page"
    return Preview(len(tasks), n_in, n_out, cost, seconds, basis, counts, list(notes or []))


# --- asking the model ---------------------------------------------------------------------------------

def _messages(task: Task, prompts: rag.Prompts, question: str | None = None) -> list[dict[str, str]]:
    template = getattr(prompts.generation, task.kind)
    user = template.user.format(passage=task.chunk["text"], question=question or "",
                                newer=task.chunk["text"], older=(task.older or {}).get("text", ""), answer="")
    turns = [m for t in template.examples for m in ({"role": "user", "content": t.user},
                                                    {"role": "assistant", "content": t.assistant})]
    return [{"role": "system", "content": template.system}, *turns, {"role": "user", "content": user}]


PAIR_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["answer", "question"],
    "properties": {"answer": {"type": "string", "maxLength": 160}, "question": {"type": "string", "maxLength": 160}}}


def _reply(text: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The JSON object of a reply with these string keys, or None: a strict reading (the first {...})."""
    data = rag.json_object(text)
    return data if data is not None and all(isinstance(data.get(k), str) for k in keys) else None


def ask_json(chat: Any, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int
             ) -> tuple[dict[str, Any] | None, int, int]:
    """A reply under `schema`; once more with a reminder if the server ignored it. (data, tokens in, out)."""
    keys = tuple(k for k, v in schema["properties"].items() if v["type"] == "string")
    tokens_in = tokens_out = 0
    for attempt in range(2):
        if attempt:
            messages = messages + [{"role": "user", "content": "Reply with one JSON object only, with the keys "
                                                               + ", ".join(schema["required"]) + "."}]
        out = chat.complete(messages, max_tokens=max_tokens, schema=schema)
        tokens_in += out.prompt_tokens
        tokens_out += out.completion_tokens
        data = _reply(out.text, keys)
        if data is not None and (schema is not VERDICT_SCHEMA or isinstance(data.get("supported"), bool)):
            return data, tokens_in, tokens_out
    return None, tokens_in, tokens_out


# --- checks -------------------------------------------------------------------------------------------

_QUESTION_WORDS = {"what", "how", "when", "where", "which", "who", "whom", "whose", "why", "can", "could", "does",
                   "do", "did", "is", "are", "was", "were", "will", "would", "should", "may", "might", "has", "have"}
_META = re.compile(r"\b(?:the|this|that|above)\s+(?:passage|paragraph|text|excerpt|section)\b", re.IGNORECASE)


def is_question(text: str) -> bool:
    """A question mark at the end, or a question word first ("How long ...", "In which plan ...")."""
    first = (text.split() or [""])[0].lower().strip("¿\"'")
    return text.rstrip().endswith("?") or first in _QUESTION_WORDS


def support(answer: str, passage: str) -> float:
    """1.0 when the answer is a span of the passage, else the share of its content words found in it."""
    a = normalize(answer)
    if a and a in normalize(passage):
        return 1.0
    words = content_words(answer)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def about(question: str, passage: str) -> float:
    """The share of the question's content words found in the passage: a question written for it uses its terms."""
    words = content_words(question)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def gives_away(question: str, answer: str) -> bool:
    """Whether the question already holds its answer (most of the answer's content words)."""
    words = content_words(answer)
    return bool(words) and len(words & content_words(question)) / len(words) >= GIVEAWAY_SHARE


def _duplicate_of(question: str, others: list[str]) -> int | None:
    found = near_duplicate_pairs_between([question], others, NEAR_DUPLICATE)
    exact = [j for j, other in enumerate(others) if normalize(other) == normalize(question)]
    return exact[0] if exact else (found[0][1] if found else None)


# --- storage ------------------------------------------------------------------------------------------

@dataclass
class Candidate:
    id: str
    run_id: str
    position: int
    kind: str
    question: str
    answer: str
    doc_id: str
    chunk_id: int
    chunk_sha: str
    passage: str
    generator: str
    status: str                           # kept, rejected (by a check); accepted, dropped (by a person)
    reason: str = ""
    group: str = ""
    source_question: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "synthetic": True}


_FIELDS = list(Candidate.__dataclass_fields__)
_COLUMNS = ["group_id" if f == "group" else f for f in _FIELDS]    # GROUP is an SQL keyword


def _save(ws: Workspace, c: Candidate) -> None:
    with ws.db() as db:
        db.execute(f"INSERT OR REPLACE INTO generated_pairs ({', '.join(_COLUMNS)}) VALUES "
                   f"({', '.join('?' for _ in _COLUMNS)})", tuple(getattr(c, k) for k in _FIELDS))


def candidates(ws: Workspace, run_id: str | None = None) -> list[Candidate]:
    sql = f"SELECT {', '.join(_COLUMNS)} FROM generated_pairs" + (" WHERE run_id = ?" if run_id else "") + \
        " ORDER BY created_at, position"
    with ws.db() as db:
        return [Candidate(*r) for r in db.execute(sql, (run_id,) if run_id else ())]


def run_id_for(settings: GenerationSettings, generator: str, chunks: str = "") -> str:
    """The same settings, generator and indexed chunks make the same run: generating again resumes it (new
    or changed documents make a new run, since the plan would point at other passages)."""
    key = json.dumps({**settings.model_dump(), "generator": generator, "chunks": chunks}, sort_keys=True)
    return "gen-" + hashlib.sha1(key.encode()).hexdigest()[:10]


@dataclass
class GenerationResult:
    run_id: str
    generator: str
    planned: int
    kept: list[Candidate]
    rejected: list[Candidate]
    notes: list[str]
    seconds: float
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "generator": self.generator, "planned": self.planned,
                "kept": [c.to_dict() for c in self.kept], "rejected": [c.to_dict() for c in self.rejected],
                "notes": self.notes, "seconds": self.seconds, "stopped": self.stopped}


def generate(ws: Workspace, settings: GenerationSettings, chat: Any = None, retriever: Any = None,
             on_item: Callable[[int, int, float], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> GenerationResult:
    """Generate (or resume) a run: each task asks the chat model once (twice if its JSON did not parse),
    checks the pair, and stores it kept or rejected with the reason before the next one starts."""
    from . import providers
    from .providers.extractive import ExtractiveAnswerer

    cfg = providers.load_providers_config()
    chat = chat or providers.get_chat_model(cfg)
    embedder = retriever.embedder if retriever is not None else providers.get_embedder(cfg)
    chunks = indexed_chunks(ws, embedder)
    retriever = retriever or index.Retriever(ws, embedder)
    tasks, notes = plan(chunks, settings)
    prompts = rag.load_prompts()
    retrieval = index.load_settings(ws).retrieval
    run_id = run_id_for(settings, chat.model_id, (index.index_meta(ws) or {}).get("chunks_sha256", ""))
    with ws.db() as db:
        db.execute("INSERT OR IGNORE INTO generation_runs (id, settings, generator, created_at, planned) "
                   "VALUES (?, ?, ?, ?, ?)", (run_id, settings.model_dump_json(), chat.label, time.time(), len(tasks)))
    done = {c.position: c for c in candidates(ws, run_id)}
    existing = [p.question for p in corpus.qa_pairs(ws) if p.source != GENERATED_SOURCE]
    kept_questions = [c.question for c in candidates(ws) if c.status in ("kept", "accepted")]
    started, asked = time.perf_counter(), 0
    todo = [t for t in tasks if t.position not in done]
    stopped = False
    for t in todo:
        if should_stop and should_stop():
            stopped = True
            break
        t0 = time.perf_counter()
        c = _make(t, run_id, chat, prompts, done, existing + kept_questions, retriever, retrieval,
                  ExtractiveAnswerer(), settings.judge)
        c.seconds = time.perf_counter() - t0
        c.created_at = time.time()
        _save(ws, c)   # before the next one: a crash loses at most the pair being made
        done[t.position] = c
        if c.status == "kept":
            kept_questions.append(c.question)
        asked += 1
        if on_item:
            left = (time.perf_counter() - started) / asked * (len(todo) - asked)
            on_item(len(done), len(tasks), left)
    everything = sorted(done.values(), key=lambda c: c.position)
    return GenerationResult(run_id, chat.label, len(tasks), [c for c in everything if c.status != "rejected"],
                            [c for c in everything if c.status == "rejected"], notes,
                            time.perf_counter() - started, stopped)


def _make(t: Task, run_id: str, chat: Any, prompts: rag.Prompts, done: dict[int, Candidate], others: list[str],
          retriever: Any, retrieval: Any, quoting: Any, judge: bool) -> Candidate:
    chunk = t.chunk
    c = Candidate(f"{run_id}-{t.position}", run_id, t.position, t.kind, "", "", chunk["doc_id"], chunk["id"],
                  chunk["content_sha256"], chunk["text"], chat.label, "rejected",
                  group=f"gen-{chunk['content_sha256'][:12]}")
    limit = prompts.generation.max_output_tokens
    if t.kind == "paraphrase":
        source = done.get(t.source)
        if source is None or source.status == "rejected":
            c.reason = "the question it would rephrase was rejected"
            return c
        c.source_question, c.answer = source.question, source.answer
        data, c.prompt_tokens, c.completion_tokens = ask_json(chat, _messages(t, prompts, source.question),
                                                              QUESTION_SCHEMA, limit)
    elif t.kind == "unanswerable":
        data, c.prompt_tokens, c.completion_tokens = ask_json(chat, _messages(t, prompts), QUESTION_SCHEMA, limit)
        c.group = ""
    else:
        data, c.prompt_tokens, c.completion_tokens = ask_json(chat, _messages(t, prompts), PAIR_SCHEMA, limit)
    if data is None:
        c.reason = "the reply was not the JSON asked for, twice"
        return c
    c.question = " ".join(data["question"].split())
    if t.kind != "paraphrase":
        c.answer = " ".join(data.get("answer", "").split()) if t.kind != "unanswerable" else ""
    c.reason = _check(t, c, others, retriever, retrieval, quoting, chat, prompts, judge)
    c.status = "rejected" if c.reason else "kept"
    return c


def _check(t: Task, c: Candidate, others: list[str], retriever: Any, retrieval: Any, quoting: Any, chat: Any,
           prompts: rag.Prompts, judge: bool) -> str:
    """Why the pair is rejected ("" when it passes every check)."""
    if len(c.question.split()) < 3:
        return "the question is too short to be one"
    if not is_question(c.question):
        return "not a question (no question mark or question word)"
    if _META.search(c.question):
        return "it asks about the passage, not about the documents' subject"
    rivals = [q for q in others if normalize(q) != normalize(c.source_question)]   # a paraphrase may echo its own
    dup = _duplicate_of(c.question, rivals)
    if dup is not None:
        return f"a near-duplicate of an existing question: \"{rivals[dup]}\""
    if t.kind == "paraphrase" and normalize(c.question) == normalize(c.source_question):
        return "the paraphrase repeats its question word for word"
    if t.kind == "unanswerable":
        if not about(c.question, c.passage):
            return "off the passage's topic (no word in common)"
        found = retriever.search(c.question, retrieval)
        answer = rag.ask(c.question, retriever, quoting, retrieval, prompts, retrieval=found)
        if not answer.abstained:
            where = next((x.doc_id for x in answer.citations if x.used), answer.citations[0].doc_id
                         if answer.citations else "?")
            return f"retrieval answers it from {where}: \"{answer.text[:120]}\""
        top = found.hits[:retrieval.top_k]
        coverage, _ = retriever.coverage(c.question, top)
        if top and found.best_relevance >= CLOSE_RELEVANCE and coverage >= CLOSE_COVERAGE:
            # Too close to call it unanswerable: a label "abstain" on an answerable question would be wrong gold.
            return (f"retrieval finds a passage that may answer it ({top[0].doc_id}, relevance "
                    f"{found.best_relevance:.2f}, {coverage:.0%} of its words): \"{top[0].text[:100]}\"")
        return ""
    if not c.answer:
        return "no answer"
    if t.kind != "paraphrase" and about(c.question, c.passage) < ABOUT_SHARE:   # a paraphrase changes the words
        return f"the question is not about its passage ({about(c.question, c.passage):.0%} of its words are in it)"
    share = support(c.answer, c.passage)
    if share < SUPPORT_SHARE:
        return f"the answer is not in its passage ({share:.0%} of its words are)"
    if gives_away(c.question, c.answer):
        return "the question gives its own answer away"
    if t.kind == "changed" and t.older is not None and support(c.answer, t.older["text"]) >= 1.0:
        return "the answer is the same in the older version"
    if judge:
        f = prompts.generation.faithful
        messages = [{"role": "system", "content": f.system},
                    {"role": "user", "content": f.user.format(passage=c.passage, question=c.question,
                                                              answer=c.answer, newer="", older="")}]
        verdict, _, _ = ask_json(chat, messages, VERDICT_SCHEMA, 32)
        if verdict is None:
            return "the judge's verdict was not the JSON asked for"
        if not verdict["supported"]:
            return "the judge found the answer unsupported by its passage"
    return ""


# --- review and use -----------------------------------------------------------------------------------

def review(ws: Workspace, changes: dict[str, dict[str, Any]]) -> None:
    """Apply a person's review: per candidate id, a new status (accepted, dropped) and edited text."""
    with ws.db() as db:
        for cid, change in changes.items():
            status = change.get("status")
            if status is not None and status not in ("kept", "accepted", "dropped", "rejected"):
                raise WorkbenchError(f"unknown review status '{status}' for {cid}", field="status")
            for key in ("status", "question", "answer"):
                if key in change:
                    db.execute(f"UPDATE generated_pairs SET {key} = ? WHERE id = ?", (change[key], cid))


def bulk(ws: Workspace, status: str, kind: str | None = None, doc_id: str | None = None,
         run_id: str | None = None) -> int:
    """Accept or drop every kept (or accepted) candidate of a kind and/or a document; how many changed."""
    chosen = [c for c in candidates(ws, run_id) if c.status in ("kept", "accepted", "dropped")
              and (kind is None or c.kind == kind) and (doc_id is None or c.doc_id == doc_id)]
    review(ws, {c.id: {"status": status} for c in chosen})
    return len(chosen)


def as_pair(c: Candidate) -> QAPair:
    return QAPair(question=c.question, answer=c.answer, doc_ids=[c.doc_id] if c.answer else [],
                  context=c.passage if c.answer else "", group=c.group or f"gen-{c.id}", category=c.kind,
                  id=f"gen:{c.id}", source=GENERATED_SOURCE)


def add_accepted(ws: Workspace) -> int:
    """Make the accepted candidates the workspace's synthetic pairs (replacing the earlier set); how many."""
    accepted = [c for c in candidates(ws) if c.status == "accepted"]
    stored, problems = corpus.replace_pairs(ws, GENERATED_SOURCE, [as_pair(c) for c in accepted])
    if problems:
        raise WorkbenchError("; ".join(str(p) for p in problems[:3]))
    return stored


def is_synthetic(p: QAPair) -> bool:
    return p.source == GENERATED_SOURCE


def describe(ws: Workspace) -> str | None:
    """How the workspace's synthetic pairs were made, for the memo and Compare (None without any)."""
    pairs = [p for p in corpus.qa_pairs(ws) if is_synthetic(p)]
    if not pairs:
        return None
    made = {c.id: c for c in candidates(ws)}
    used = [made[p.id.removeprefix("gen:")] for p in pairs if p.id.removeprefix("gen:") in made]
    generators = sorted({c.generator for c in used}) or ["an unknown model"]
    kinds = ", ".join(f"{sum(1 for p in pairs if p.category == k)} {k}" for k in KINDS
                      if any(p.category == k for p in pairs))
    runs = {c.run_id for c in used}
    tried = [c for c in candidates(ws) if c.run_id in runs]
    kept = sum(1 for c in tried if c.status != "rejected")
    return (f"{len(pairs)} of the workspace's pairs are synthetic ({kinds}): written by {', '.join(generators)} from "
            f"{len({c.chunk_sha for c in used})} passage(s) of {len({c.doc_id for c in used})} document(s), each "
            f"checked (the answer is in its passage, the question does not give it away, no near-duplicate, an "
            f"unanswerable question is not answered by retrieval): {kept} of {len(tried)} candidates passed, and "
            "a person accepted these.")
