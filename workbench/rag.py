"""Answer a question from a workspace's index: retrieve, guard the context window, generate, cite.

Every answer carries its citations, latency by stage, tokens in and out, the cost at the configured
prices, and which provider produced it (so an offline stand-in is never mistaken for an LLM).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import Field

from . import tokens
from .config import Strict, config_path, load_model
from .errors import WorkbenchError
from .index import Hit, Retrieval, RetrievalSettings, Retriever
from .pricing import PriceBook, load_pricing
from .providers.protocols import ChatModel, ChatResult, Grounding


class Example(Strict):
    """A worked example turn shown before the question: small models copy its form and length."""

    question: str
    answer: str            # "{refusal}" for an example the model should decline
    context: str = ""      # the passages of a RAG example (ignored by the closed-book template)


class RagPrompt(Strict):
    system: str
    user: str
    passage: str
    max_output_tokens: int = 400
    examples: list[Example] = []


class ClosedBookPrompt(Strict):
    system: str
    examples: list[Example] = []


REPLY_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["answerable", "answer"],
    "properties": {"answerable": {"type": "boolean"}, "answer": {"type": "string", "maxLength": 1000}}}


class Turn(Strict):
    user: str
    assistant: str


class GenerationPrompt(Strict):
    """One request of question/answer generation; placeholders {passage}, {question}, {answer}, {newer}, {older}.
    `examples`: worked turns shown first (a small model copies their form)."""

    system: str
    user: str
    examples: list[Turn] = []


class GenerationPrompts(Strict):
    """Question/answer pairs from a passage (synthetic.py): every reply is JSON under a schema."""

    factual: GenerationPrompt = GenerationPrompt(
        system="You write test questions about documentation. Reply with JSON only.",
        user="Passage:\n{passage}\n\nChoose a fact from this passage as the answer, then write the question a user "
             "would ask to get it.",
        examples=[Turn(user="Passage:\nRefunds go back to the original card within 5 business days. Invoices are "
                            "emailed on the 1st of each month.\n\nChoose a fact from this passage as the answer, then "
                            "write the question a user would ask to get it.",
                       assistant='{"answer": "Refunds go back to the original card within 5 business days", '
                                 '"question": "How long does a refund take?"}')])
    paraphrase: GenerationPrompt = GenerationPrompt(
        system="You rephrase questions. Reply with JSON only.",
        user="Rephrase this question with different words, keeping its meaning:\n{question}")
    unanswerable: GenerationPrompt = GenerationPrompt(
        system="You write test questions about documentation. Reply with JSON only.",
        user="Passage:\n{passage}\n\nWrite one question on the same topic that this passage does not answer "
             "(a detail it never mentions).")
    changed: GenerationPrompt = GenerationPrompt(
        system="You write test questions about documentation that changed between versions. Reply with JSON only.",
        user="Older passage:\n{older}\n\nNewer passage:\n{newer}\n\nWrite one question whose answer differs "
             "between the two, and its answer from the newer passage (a short phrase).")
    faithful: GenerationPrompt = GenerationPrompt(
        system="You check test questions. Reply with JSON only.",
        user="Passage:\n{passage}\n\nQuestion: {question}\nAnswer: {answer}\n\nIs the answer stated in the "
             "passage, and does it answer the question?")
    max_output_tokens: Annotated[int, Field(ge=16, le=4096)] = 256   # room for the whole JSON object


class Prompts(Strict):
    refusal: str = "I cannot answer that from what I know."
    # text: the model answers in prose and declines with the refusal sentence; json: it replies
    # {"answerable": bool, "answer": str}, constrained to that schema (llama.cpp grammar, structured outputs)
    reply: Literal["text", "json"] = "text"
    rag: RagPrompt
    generation: GenerationPrompts = GenerationPrompts()
    closed_book: ClosedBookPrompt = ClosedBookPrompt(
        system="Answer the question briefly. If you do not know the answer, reply with exactly this sentence "
               "and nothing else: {refusal}")

    def closed_book_system(self) -> str:
        return self.closed_book.system.format(refusal=self.refusal)

    def schema_for(self, chat: ChatModel) -> dict[str, Any] | None:
        """The JSON schema a model's replies must follow; None for prose replies or a model that only quotes."""
        return REPLY_SCHEMA if self.reply == "json" and chat.generative else None

    def example_reply(self, example: Example) -> str:
        refused = example.answer.strip() == "{refusal}"
        if self.reply == "json":
            return json.dumps({"answerable": not refused, "answer": "" if refused else example.answer})
        return self.refusal if refused else example.answer

    def closed_book_messages(self, question: str) -> list[dict[str, str]]:
        """The base arm's request: the system line, the worked examples, the question."""
        turns = [{"role": "system", "content": self.closed_book_system()}]
        for ex in self.closed_book.examples:
            turns += [{"role": "user", "content": ex.question},
                      {"role": "assistant", "content": self.example_reply(ex)}]
        return turns + [{"role": "user", "content": question}]


def load_prompts(path: Path | str | None = None) -> Prompts:
    return load_model(Prompts, Path(path) if path else config_path("prompts.yaml"))


@dataclass
class Citation:
    n: int
    doc_id: str
    title: str
    heading_path: str
    score: float
    relevance: float
    text: str
    used: bool          # quoted or cited by the answer


@dataclass
class Answer:
    question: str
    text: str
    abstained: bool
    citations: list[Citation]
    latency_ms: dict[str, float]
    prompt_tokens: int
    output_tokens: int
    cost_usd: float | None
    cost_note: str
    provider: str
    offline: bool
    model: str
    mode: str
    best_relevance: float
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # time_to_first_token_ms, tokens_per_s (local models)
    generative: bool = True          # False: an answerer that only quotes passages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_refusal(text: str, prompts: Prompts) -> bool:
    """Whether a model's reply is the refusal sentence the prompts ask for (or says nothing at all)."""
    from .text import normalize

    reply = normalize(text)
    return not reply or reply.startswith(normalize(prompts.refusal))


def json_object(text: str) -> dict[str, Any] | None:
    """The first {...} of a model's reply as a JSON object, or None (a server may wrap or break the JSON)."""
    import re

    match = re.search(r"\{.*\}", text or "", re.S)
    if not match:
        return None
    try:
        data = json.loads(match.group())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def read_reply(result: ChatResult, prompts: Prompts, chat: ChatModel) -> tuple[str, bool]:
    """The answer text and whether the model declined: its own flag, the JSON field, or the refusal form.

    A JSON reply that does not parse (a server that ignored the schema) counts as declined, with the raw
    text kept as the answer so it can be read.
    """
    text = result.text.strip()
    if prompts.schema_for(chat) is not None and not result.abstained:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text, True
        if isinstance(data, dict) and isinstance(data.get("answerable"), bool):
            answer = str(data.get("answer") or "").strip()
            return (answer or prompts.refusal), (not data["answerable"]) or not answer
        return text, True
    return text, result.abstained or is_refusal(text, prompts)


def build_messages(prompts: Prompts, question: str, hits: list[Hit]) -> list[dict[str, str]]:
    """The RAG request: the system line, the worked examples, then the numbered passages and the question."""
    passages = [prompts.rag.passage.format(n=i, title=h.title, heading=f" - {h.heading_path}" if h.heading_path else "",
                                           text=h.text) for i, h in enumerate(hits, 1)]
    turns = [{"role": "system", "content": prompts.rag.system.format(refusal=prompts.refusal)}]
    for ex in prompts.rag.examples:
        turns += [{"role": "user", "content": prompts.rag.user.format(context=ex.context, question=ex.question)},
                  {"role": "assistant", "content": prompts.example_reply(ex)}]
    return turns + [{"role": "user", "content": prompts.rag.user.format(context="\n\n".join(passages),
                                                                         question=question)}]


def context_window_of(model: str, book: PriceBook, fallback: int | None) -> int | None:
    try:
        return book.model(model).context_window
    except WorkbenchError:
        return fallback


def check_context(messages: list[dict[str, str]], model: str, window: int | None, max_output: int) -> int:
    """Prompt tokens; refuses a request whose prompt plus answer would overflow the context window."""
    prompt_tokens = tokens.count_messages(messages, model)
    if window is not None and prompt_tokens + max_output > window:
        raise WorkbenchError(f"the retrieved context would overflow {model}'s context window of {window:,} tokens "
                             f"by {prompt_tokens + max_output - window:,} (prompt {prompt_tokens:,} + answer "
                             f"{max_output:,}); lower top_k or the chunk size")
    return prompt_tokens


def model_prices(book: PriceBook, model: str) -> tuple[float, float] | None:
    try:
        m = book.model(model)
    except WorkbenchError:
        return None
    return m.input, m.output


def ask(question: str, retriever: Retriever, chat: ChatModel, settings: RetrievalSettings,
        prompts: Prompts | None = None, book: PriceBook | None = None, context_window: int | None = None,
        retrieval: Retrieval | None = None, prices: tuple[float, float] | None = None, prior: Any = None,
        on_token: Callable[[str], None] | None = None) -> Answer:
    """Retrieve passages for a question and answer from them with the configured chat provider.

    A retrieval already made (for example a deeper one for evaluation) can be passed in; its top_k hits
    are used. `prices` (input, output per 1M) override the price list, e.g. for a fine-tuned model;
    `prior` scores candidate sentences for the extractive answerer (a fine-tuned model's preference);
    `on_token` receives the answer as it is generated.
    """
    question = question.strip()
    if not question:
        raise WorkbenchError("ask a question", field="question")
    prompts = prompts or load_prompts()
    book = book or load_pricing()
    retrieval = retrieval or retriever.search(question, settings)
    hits = retrieval.hits[:settings.top_k]
    embedder = retriever.embedder
    notes: list[str] = []
    t0 = time.perf_counter()
    messages = build_messages(prompts, question, hits)
    window = context_window_of(chat.model_id, book, context_window)
    prompt_tokens = check_context(messages, chat.model_id, window, prompts.rag.max_output_tokens)
    coverage, missing = retriever.coverage(question, hits)
    grounding = Grounding(question, [h.text for h in hits], [h.relevance for h in hits], embedder,
                          settings.min_relevance, coverage, missing, settings.min_coverage, prior)
    streamed: list[str] = []

    def passed_on(piece: str) -> None:
        streamed.append(piece)
        on_token(piece)  # type: ignore[misc]
    result = chat.complete(messages, max_tokens=prompts.rag.max_output_tokens, grounding=grounding,
                           schema=prompts.schema_for(chat), on_token=passed_on if on_token else None)
    if on_token and not streamed and result.text:   # a backend (a plugin) that ignored on_token
        on_token(result.text)
    notes.extend(result.notes)  # e.g. a provider's implausible token usage, replaced; what a stand-in is
    text, abstained = read_reply(result, prompts, chat)
    prompt_tokens = result.prompt_tokens or prompt_tokens
    output_tokens = result.completion_tokens or tokens.count(result.text, chat.model_id)
    used = {n for n in range(1, len(hits) + 1) if f"[{n}]" in text}
    price = prices or model_prices(book, chat.model_id)
    if chat.offline:
        cost, cost_note = 0.0, f"{chat.label} runs locally: no token charges"
    elif price:
        cost = (prompt_tokens * price[0] + output_tokens * price[1]) / 1e6
        cost_note = f"{chat.model_id} at ${price[0]}/{price[1]} per 1M tokens in/out"
    else:
        cost, cost_note = None, f"no price for {chat.model_id}; add it as a custom price on the Estimate page"
    model = result.model
    generate_ms = (time.perf_counter() - t0) * 1000
    emb_price = None if embedder.offline else _embedding_price(book, embedder.model_id)
    if emb_price is not None and cost is not None:
        cost += tokens.count(question, embedder.model_id) * emb_price / 1e6
    citations = [Citation(n=i, doc_id=h.doc_id, title=h.title, heading_path=h.heading_path, score=h.score,
                          relevance=h.relevance, text=h.text, used=i in used) for i, h in enumerate(hits, 1)]
    return Answer(question=question, text=text, abstained=abstained, citations=citations,
                  latency_ms={"embed query": retrieval.embed_ms, "search": retrieval.search_ms,
                              "generate": generate_ms,
                              "total": retrieval.embed_ms + retrieval.search_ms + generate_ms},
                  prompt_tokens=prompt_tokens, output_tokens=output_tokens, cost_usd=cost, cost_note=cost_note,
                  provider=chat.label, offline=chat.offline, model=model, mode=retrieval.mode,
                  best_relevance=retrieval.best_relevance, notes=notes, timings=dict(result.timings),
                  generative=chat.generative)


def _embedding_price(book: PriceBook, model: str) -> float | None:
    try:
        return book.embedding(model).price
    except WorkbenchError:
        return None
