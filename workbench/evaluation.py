"""The Compare step: every arm on the same held-out questions, saved per question, with honest metrics.

Arms: the base model without context, RAG, the fine-tuned model, the fine-tuned model with retrieved
context (sequential hybrid), and a router (selective hybrid) that sends each question to RAG or to the
fine-tuned model. Each result is saved as it completes, so an interrupted run resumes where it stopped
and nothing is computed twice. Offline, the arms use the embedded stand-ins and say so.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Callable, Literal

import numpy as np
from pydantic import Field

from . import capture, finetune, metrics, overlap, rag, tokens
from .config import Strict
from .errors import WorkbenchError
from .index import Retriever, load_settings
from .parsing import QAPair
from .synthetic import GENERATED_SOURCE
from .pricing import PriceBook, load_pricing, saved_custom_prices
from .workspace import Workspace

ARMS = ("base", "rag", "ft", "ft_rag", "router")
ARM_LABELS = {"base": "Base model (no context)", "rag": "RAG", "ft": "Fine-tuned",
              "ft_rag": "Fine-tuned + RAG (sequential)", "router": "Router (selective hybrid)",
              "frozen": "Captured answers (frozen)"}
FROZEN = "frozen"             # answers captured earlier from a (retiring) model; only with a capture chosen
ESTIMATE_OPTION = {"rag": "rag", "ft": "fine_tuning", "ft_rag": "hybrid_sequential", "router": "hybrid_routing"}
MEASURED_KEY = "measured_figures"
RETRIEVAL_DEPTH = 10          # distinct documents ranked for the retrieval metrics (nDCG@10)
FT_ARMS = ("ft", "ft_rag", "router")
TUNED_ON_SAMPLE = ("rrf_k", "min_relevance", "min_coverage")   # retrieval defaults chosen on the sample's questions


class EvalSettings(Strict):
    arms: list[Literal["base", "rag", "ft", "ft_rag", "router", "frozen"]] = list(ARMS)
    router_rule: Literal["relevance", "classifier"] = "relevance"
    router_threshold: Annotated[float, Field(ge=-1, le=1)] = 0.45   # best relevance at or above: RAG
    concurrency: Annotated[int, Field(ge=1, le=32)] = 4
    ft_model: str | None = None       # a trained model id; default: the newest one (fixed when the run is made)
    frozen: str | None = None         # the capture the frozen arm answers from; default: the newest one
    bootstrap_resamples: Annotated[int, Field(ge=100, le=20000)] = 2000
    allow_overlap: bool = False       # score the fine-tuned arms on questions they saw; the run is marked contaminated


@dataclass
class QuestionResult:
    arm: str
    question_id: str
    question: str
    gold: str
    category: str
    answer: str
    abstained: bool
    gold_docs: list[str] = field(default_factory=list)
    gold_grades: dict[str, float] = field(default_factory=dict)   # graded relevance, when the questions give it
    retrieved: list[str] = field(default_factory=list)       # document ids of the ranked chunks (retrieval arms)
    context: str = ""
    relevance: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    routed_to: str | None = None
    provider: str = ""
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)   # a local model's time to first token, tokens/s


# --- the arms ---------------------------------------------------------------------------------------

class Arms:
    """Everything the arms need, made once per run."""

    def __init__(self, ws: Workspace, settings: EvalSettings, chat: Any, embedder: Any,
                 retriever: Retriever | None, book: PriceBook | None = None, context_window: int | None = None):
        self.ws, self.settings, self.chat, self.embedder, self.retriever = ws, settings, chat, embedder, retriever
        self.book = book or load_pricing()
        self.context_window = context_window
        self.retrieval = load_settings(ws).retrieval
        self.prompts = rag.load_prompts()
        self.system_prompt = finetune.FineTuneSettings.load(ws).system_prompt
        self.ft_ref = _chosen_model(ws, settings.ft_model)
        self.local_model = finetune.load_local_model(ws, self.ft_ref.id) if self.ft_ref and self.ft_ref.kind == "local" \
            else None
        # The local trainer reads questions through the embedder it was trained with, not the index's.
        self.ft_embedder = finetune.local_model_embedder() if self.local_model is not None else None
        self.ft_chat = self._ft_chat()
        self.frozen_ref = capture.get_capture(ws, settings.frozen) if FROZEN in settings.arms and settings.frozen \
            else None
        self.frozen_answers = capture.answers(ws, self.frozen_ref.id) if self.frozen_ref else {}
        self.classifier = None
        self._lock = threading.Lock()

    def _ft_chat(self) -> Any:
        ref = self.ft_ref
        if ref is not None and ref.kind == "lora":
            return finetune.lora_chat(self.ws, ref.id)
        if ref is None or ref.kind == "local":
            return None
        from .providers import REGISTRY, get_fine_tuner, load_providers_config

        cfg = load_providers_config()
        if ref.kind != "openai-compatible":   # the model a hosted job yielded, from the fine-tuner that trained it
            return get_fine_tuner(cfg, name=ref.kind).chat_model(ref.id)
        cfg = cfg.model_copy(update={"openai": cfg.openai.model_copy(
            update={"base_url": ref.base_url, "api_key_env": ref.api_key_env})})
        backend = REGISTRY.get("chat", "openai")
        return backend.factory(backend.settings(model=ref.id), cfg)

    def ft_label(self) -> str:
        return self.ft_ref.label if self.ft_ref else "no trained model"

    def ft_prices(self) -> tuple[float, float] | None:
        """Fine-tuned prices of the base model named in an OpenAI fine-tune id (ft:BASE:org:suffix:id)."""
        if self.ft_ref is None or self.ft_ref.kind != "openai":
            return None
        base = self.ft_ref.id.split(":")[1] if self.ft_ref.id.startswith("ft:") else self.ft_ref.id
        try:
            ft = self.book.model(base).fine_tuning
        except WorkbenchError:
            return None
        return (ft.input, ft.output) if ft and ft.input is not None and ft.output is not None else None

    # Each arm returns a QuestionResult for one question.

    def base(self, p: QAPair) -> QuestionResult:
        t0 = time.perf_counter()
        messages = self.prompts.closed_book_messages(p.question)
        out = self.chat.complete(messages, max_tokens=self.prompts.rag.max_output_tokens,
                                 schema=self.prompts.schema_for(self.chat))
        prompt_tokens = out.prompt_tokens or tokens.count_messages(messages)
        output_tokens = out.completion_tokens or tokens.count(out.text)
        price = rag.model_prices(self.book, self.chat.model_id)
        cost = 0.0 if self.chat.offline else \
            (prompt_tokens * price[0] + output_tokens * price[1]) / 1e6 if price else None
        text, abstained = rag.read_reply(out, self.prompts, self.chat)
        r = self._result("base", p, text, abstained, provider=self.chat.label, prompt_tokens=prompt_tokens,
                         output_tokens=output_tokens, cost=cost)
        r.latency_ms, r.timings = {"generate": (time.perf_counter() - t0) * 1000}, dict(out.timings)
        return r

    def _search(self, p: QAPair):
        """A retrieval deep enough to rank RETRIEVAL_DEPTH distinct documents (or every chunk there is)."""
        k = max(3 * RETRIEVAL_DEPTH, self.retrieval.top_k)
        while True:
            found = self.retriever.search(p.question, self.retrieval.model_copy(update={"top_k": k}))
            if len(metrics.documents([h.doc_id for h in found.hits])) >= RETRIEVAL_DEPTH or len(found.hits) < k:
                return found
            k *= 2

    def _from_answer(self, arm: str, p: QAPair, answer: rag.Answer, retrieval: Any) -> QuestionResult:
        used = retrieval.hits[:self.retrieval.top_k]
        return self._result(arm, p, answer.text, answer.abstained,
                            retrieved=[h.doc_id for h in retrieval.hits], context="\n".join(h.text for h in used),
                            relevance=answer.best_relevance, latency={k: v for k, v in answer.latency_ms.items()
                                                                      if k != "total"},
                            prompt_tokens=answer.prompt_tokens, output_tokens=answer.output_tokens,
                            cost=answer.cost_usd, provider=answer.provider, timings=answer.timings)

    def rag(self, p: QAPair) -> QuestionResult:
        retrieval = self._search(p)
        answer = rag.ask(p.question, self.retriever, self.chat, self.retrieval, self.prompts, self.book,
                         self.context_window, retrieval=retrieval)
        return self._from_answer("rag", p, answer, retrieval)

    def ft(self, p: QAPair) -> QuestionResult:
        self._need_ft()
        t0 = time.perf_counter()
        system = self.system_prompt
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p.question}]
        if self.local_model is not None:
            text, _ = self.local_model.answer(np.asarray(self.ft_embedder.embed([p.question])))[0]
            r = self._result("ft", p, text, False, provider=finetune.LOCAL_LABEL,
                             prompt_tokens=tokens.count_messages(messages), output_tokens=tokens.count(text))
        else:
            out = self.ft_chat.complete(messages, max_tokens=self.prompts.rag.max_output_tokens)
            price = self.ft_prices()
            cost = 0.0 if self.ft_chat.offline else \
                (out.prompt_tokens * price[0] + out.completion_tokens * price[1]) / 1e6 if price else None
            # a tuned model answers in the form it was trained on (prose), whatever the templates ask
            r = self._result("ft", p, out.text, out.abstained or rag.is_refusal(out.text, self.prompts),
                             provider=self.ft_label(), prompt_tokens=out.prompt_tokens,
                             output_tokens=out.completion_tokens, cost=cost)
            r.timings = dict(out.timings)
        r.latency_ms = {"generate": (time.perf_counter() - t0) * 1000}
        return r

    def ft_rag(self, p: QAPair) -> QuestionResult:
        self._need_ft()
        retrieval = self._search(p)
        if self.ft_chat is not None:
            prices = self.ft_prices()
            answer = rag.ask(p.question, self.retriever, self.ft_chat, self.retrieval, self.prompts, self.book,
                             self.context_window, retrieval=retrieval, prices=prices)
            if prices is None and not self.ft_chat.offline:  # never the base model's list price for a tuned model
                answer.cost_usd = None
            return self._from_answer("ft_rag", p, answer, retrieval)
        # Offline stand-in: the extractive answerer reads the retrieved passages, and the local model's
        # learned preference among answer words steers which sentence it quotes.
        features = np.asarray(self.ft_embedder.embed([p.question]))

        def prior(sentences: list[str]) -> np.ndarray:
            s = self.local_model.text_scores(features, sentences)
            return 0.05 * (s - s.mean()) / (s.std() + 1e-9)

        answer = rag.ask(p.question, self.retriever, self.quoting_chat(), self.retrieval, self.prompts, self.book,
                         self.context_window, retrieval=retrieval, prior=prior)
        r = self._from_answer("ft_rag", p, answer, retrieval)
        r.provider = f"{finetune.LOCAL_LABEL} steering the extractive answerer over retrieved passages"
        return r

    def frozen(self, p: QAPair) -> QuestionResult:
        """What the captured model said to this question when its answers were kept."""
        if self.frozen_ref is None:
            raise WorkbenchError("no captured answers: capture a model's answers first (Fine-tune page, or "
                                 "`workbench finetune capture MODEL_ID`)")
        got = self.frozen_answers.get(p.id)
        if got is None:
            raise WorkbenchError(f"{self.frozen_ref.label} has no answer to question {p.id}: capture it again to "
                                 "add the questions it lacks")
        r = self._result(FROZEN, p, got["answer"], got["abstained"], provider=self.frozen_ref.label,
                         prompt_tokens=got["prompt_tokens"], output_tokens=got["completion_tokens"], cost=None)
        r.latency_ms = {"generate": got["latency_ms"]}
        return r

    def quoting_chat(self) -> Any:
        """The extractive answerer the offline stand-in steers: the chat role itself when it only quotes."""
        if not self.chat.generative:
            return self.chat
        from .providers.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer()

    def route(self, p: QAPair) -> tuple[str, float]:
        """Which arm a question goes to, and the time the decision took."""
        t0 = time.perf_counter()
        if self.settings.router_rule == "classifier":
            if self.classifier is None:
                raise WorkbenchError("the router's classifier is not trained; train it on labelled examples first")
            label = self.classifier.predict(np.asarray(self.embedder.embed([p.question])))[0]
        else:
            best = self._search(p).best_relevance
            label = "rag" if best >= self.settings.router_threshold else "ft"
        return label, (time.perf_counter() - t0) * 1000

    def _need_ft(self) -> None:
        if self.ft_ref is None:
            raise WorkbenchError("no fine-tuned model yet: train one on the Fine-tune page (the local trainer "
                                 "takes seconds) or register one")

    @staticmethod
    def _result(arm: str, p: QAPair, text: str, abstained: bool, retrieved: list[str] | None = None,
                context: str = "", relevance: float | None = None, latency: dict[str, float] | None = None,
                prompt_tokens: int = 0, output_tokens: int = 0, cost: float | None = 0.0,
                provider: str = "", timings: dict[str, float] | None = None) -> QuestionResult:
        return QuestionResult(arm=arm, question_id=p.id, question=p.question, gold=p.answer,
                              category=p.category or ("unanswerable" if not p.answer else "factual"), answer=text,
                              abstained=abstained, gold_docs=list(p.doc_ids), gold_grades=dict(p.doc_grades),
                              retrieved=retrieved or [], context=context, relevance=relevance,
                              latency_ms=latency or {}, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                              cost_usd=cost, provider=provider, timings=dict(timings or {}))


class RouterClassifier:
    """Logistic regression on question embeddings: which arm a question should go to."""

    def __init__(self, weights: np.ndarray, bias: float):
        self.weights, self.bias = weights, bias

    @classmethod
    def fit(cls, features: np.ndarray, labels: list[str], epochs: int = 300, lr: float = 0.5) -> RouterClassifier:
        y = np.array([1.0 if label == "rag" else 0.0 for label in labels])
        if len(set(y)) < 2:
            raise WorkbenchError("the router's labelled examples need both labels, rag and ft")
        w, b = np.zeros(features.shape[1]), 0.0
        for _ in range(epochs):
            p = 1 / (1 + np.exp(-(features @ w + b)))
            w -= lr * (features.T @ (p - y) / len(y) + 1e-3 * w)
            b -= lr * float((p - y).mean())
        return cls(w, b)

    def predict(self, features: np.ndarray) -> list[str]:
        return ["rag" if v >= 0 else "ft" for v in features @ self.weights + self.bias]


# --- runs -------------------------------------------------------------------------------------------

def check_overlap(ws: Workspace, questions: list[QAPair], settings: EvalSettings) -> overlap.Overlap | None:
    """The overlap of the fine-tuned arm's model (and of the captured model, for the frozen arm) with the
    questions; None when neither arm runs. Refuses, naming the count and the model, unless allowed."""
    seen: list[tuple[str, overlap.TrainingRecord | None]] = []
    if any(a in settings.arms for a in FT_ARMS):
        ref = _chosen_model(ws, settings.ft_model)
        if ref is not None:
            seen.append((ref.label, ref.trained_on))
    if FROZEN in settings.arms and settings.frozen:
        kept = capture.get_capture(ws, settings.frozen)
        seen.append((kept.label, kept.trained_on))
    worst: overlap.Overlap | None = None
    for label, record in seen:
        if record is None:
            found = overlap.Overlap(label, len(questions), near=[q.id for q in questions])
            reason = (f"what {label} was trained on is not recorded, so all {len(questions)} questions may overlap "
                      "it; register (or capture) it again with its training data")
        else:
            found = overlap.check(questions, record, label)
            reason = found.message()
        if found.count and not settings.allow_overlap:
            raise OverlapError(f"{reason}. Evaluate on questions it never saw (the test side of the split), or allow "
                               "the overlap to run anyway, marked contaminated.", found)
        if worst is None or found.count > worst.count:
            worst = found
    return worst


class OverlapError(WorkbenchError):
    """Evaluation questions overlap what the fine-tuned model was trained or tuned on."""

    def __init__(self, message: str, found: overlap.Overlap):
        super().__init__(message)
        self.overlap = found


def _chosen_model(ws: Workspace, model_id: str | None) -> finetune.TrainedModel | None:
    models = finetune.trained_models(ws)
    if model_id:
        chosen = [m for m in models if m.id == model_id]
        if not chosen:
            raise WorkbenchError(f"no trained model '{model_id}'; known: {', '.join(m.id for m in models) or 'none'}")
        return chosen[0]
    return models[0] if models else None


def create_run(ws: Workspace, questions: list[QAPair], settings: EvalSettings) -> str:
    """Save a run's questions and settings (the fine-tuned model fixed by id) after the overlap check."""
    if any(a in settings.arms for a in FT_ARMS) and settings.ft_model is None:
        ref = _chosen_model(ws, None)
        settings = settings.model_copy(update={"ft_model": ref.id if ref else None})
    if FROZEN in settings.arms and settings.frozen is None:
        kept = capture.captures(ws)
        settings = settings.model_copy(update={"frozen": kept[0].id if kept else None})
    found = check_overlap(ws, questions, settings)
    run_id = f"eval-{uuid.uuid4().hex[:10]}"
    with ws.db() as db:
        db.execute("INSERT INTO eval_runs (id, created_at, settings, questions, state, overlap) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (run_id, time.time(), settings.model_dump_json(), json.dumps([asdict(q) for q in questions]),
                    "created", json.dumps(found.to_dict() if found else {})))
    return run_id


def runs(ws: Workspace) -> list[dict[str, Any]]:
    with ws.db() as db:
        rows = db.execute("SELECT r.id, r.created_at, r.state, r.settings, r.overlap, COUNT(e.question_id) AS results "
                          "FROM eval_runs r LEFT JOIN eval_results e ON e.run_id = r.id GROUP BY r.id "
                          "ORDER BY r.created_at DESC").fetchall()
    return [dict(r) for r in rows]


def run_settings(ws: Workspace, run_id: str) -> EvalSettings:
    """The settings a run was created with: a resumed run uses these, never today's choices."""
    return _load_run(ws, run_id)[0]


def run_questions(ws: Workspace, run_id: str) -> list[QAPair]:
    """The questions a run scores, as they were when it was created."""
    return _load_run(ws, run_id)[1]


def _load_run(ws: Workspace, run_id: str) -> tuple[EvalSettings, list[QAPair]]:
    with ws.db() as db:
        row = db.execute("SELECT settings, questions FROM eval_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise WorkbenchError(f"no evaluation run '{run_id}'")
    return EvalSettings.model_validate_json(row["settings"]), [QAPair(**q) for q in json.loads(row["questions"])]


def _run_overlap(ws: Workspace, run_id: str) -> dict[str, Any]:
    with ws.db() as db:
        row = db.execute("SELECT overlap FROM eval_runs WHERE id = ?", (run_id,)).fetchone()
    return json.loads(row["overlap"]) if row and row["overlap"] else {}


def results(ws: Workspace, run_id: str) -> dict[str, dict[str, QuestionResult]]:
    """Saved results of a run: arm -> question id -> result."""
    out: dict[str, dict[str, QuestionResult]] = {}
    with ws.db() as db:
        for r in db.execute("SELECT arm, question_id, result FROM eval_results WHERE run_id = ?", (run_id,)):
            out.setdefault(r["arm"], {})[r["question_id"]] = QuestionResult(**json.loads(r["result"]))
    return out


def _save(ws: Workspace, run_id: str, result: QuestionResult) -> None:
    with ws.db() as db:
        db.execute("INSERT OR REPLACE INTO eval_results VALUES (?, ?, ?, ?)",
                   (run_id, result.arm, result.question_id, json.dumps(asdict(result))))


def _set_state(ws: Workspace, run_id: str, state: str) -> None:
    with ws.db() as db:
        db.execute("UPDATE eval_runs SET state = ? WHERE id = ?", (state, run_id))


Progress = Callable[[str, int, int, float], None]   # arm, done, total, seconds left (estimate)


def _failed(arm: str, p: QAPair, exc: WorkbenchError) -> QuestionResult:
    res = Arms._result(arm, p, "", False)
    res.error = str(exc)
    return res


def run(ws: Workspace, run_id: str, arms_ctx: Arms, progress: Progress | None = None,
        stop: threading.Event | None = None) -> dict[str, dict[str, QuestionResult]]:
    """Run (or resume) every arm of a run with the settings saved with it; each result is saved as soon as
    it is computed; questions that failed are tried again on resume."""
    settings, questions = _load_run(ws, run_id)
    if any(a in settings.arms for a in FT_ARMS) and (arms_ctx.ft_ref.id if arms_ctx.ft_ref else None) \
            != settings.ft_model:
        raise WorkbenchError(f"run {run_id} was made with the fine-tuned model '{settings.ft_model}'; resuming it "
                             f"with '{arms_ctx.ft_ref.id if arms_ctx.ft_ref else 'none'}' is refused (start a new run)")
    arms_ctx.settings = settings
    done = results(ws, run_id)
    state = "failed"
    _set_state(ws, run_id, "running")
    try:
        for arm in settings.arms:
            _run_arm(ws, run_id, arms_ctx, arm, questions, done, progress, stop)
            if stop is not None and stop.is_set():
                break
        if stop is not None and stop.is_set():
            state = "stopped"
        else:
            complete = all(len(done.get(a, {})) == len(questions) and all(r.error is None for r in done[a].values())
                           for a in settings.arms)
            state = "complete" if complete else "incomplete"
    finally:
        _set_state(ws, run_id, state)
    return done


def _run_arm(ws: Workspace, run_id: str, ctx: Arms, arm: str, questions: list[QAPair],
             done: dict[str, dict[str, QuestionResult]], progress: Progress | None,
             stop: threading.Event | None) -> None:
    finished = done.setdefault(arm, {})
    todo = [q for q in questions if q.id not in finished or finished[q.id].error is not None]
    started, total = time.perf_counter(), len(questions)
    if progress:
        progress(arm, total - len(todo), total, 0.0)

    def keep(p: QAPair, res: QuestionResult) -> None:
        finished[p.id] = res
        _save(ws, run_id, res)   # failed ones too, so they are counted; a resume tries them again
        _report(progress, arm, finished, total, started, len(todo))

    if arm == "router":  # one at a time: a routed question may run the chosen arm and keep its result
        for p in todo:
            if stop is not None and stop.is_set():
                return
            try:
                keep(p, _route_one(ws, run_id, ctx, p, done))
            except WorkbenchError as exc:
                if _fatal(exc):
                    raise
                keep(p, _failed(arm, p, exc))
        return
    fn = getattr(ctx, arm)
    with ThreadPoolExecutor(max_workers=ctx.settings.concurrency) as pool:
        futures = {pool.submit(fn, p): p for p in todo}
        stopping = False
        for fut in as_completed(futures):
            if fut.cancelled():
                continue
            p = futures[fut]
            try:
                res = fut.result()
            except WorkbenchError as exc:
                if _fatal(exc):
                    for f in futures:
                        f.cancel()
                    raise
                res = _failed(arm, p, exc)
            keep(p, res)
            if not stopping and stop is not None and stop.is_set():
                stopping = True  # no new questions; those already running are still saved
                for f in futures:
                    f.cancel()


def _fatal(exc: WorkbenchError) -> bool:
    """Errors that no retry of the same question can fix: the arm has nothing to run."""
    return any(s in str(exc) for s in ("no fine-tuned model", "not trained", "no captured answers"))


def _report(progress: Progress | None, arm: str, finished: dict, total: int, started: float, todo: int) -> None:
    if progress:
        new = len(finished) - (total - todo)
        rate = (time.perf_counter() - started) / max(1, new)
        progress(arm, len(finished), total, rate * (total - len(finished)))


def _route_one(ws: Workspace, run_id: str, ctx: Arms, p: QAPair, done: dict[str, dict[str, QuestionResult]]
               ) -> QuestionResult:
    label, decide_ms = ctx.route(p)
    chosen = done.get(label, {}).get(p.id)
    if chosen is None or chosen.error is not None:  # not run (or failed) for this question yet: run it and keep it
        chosen = getattr(ctx, label)(p)
        if label in ctx.settings.arms:
            done.setdefault(label, {})[p.id] = chosen
            _save(ws, run_id, chosen)
    routed = QuestionResult(**{**asdict(chosen), "arm": "router", "routed_to": label})
    routed.latency_ms = {"route": decide_ms, **chosen.latency_ms}
    return routed


def train_router(ctx: Arms, examples: list[tuple[str, str]]) -> RouterClassifier:
    """Train the question-type router on (question, 'rag' | 'ft') examples."""
    features = np.asarray(ctx.embedder.embed([q for q, _ in examples]))
    ctx.classifier = RouterClassifier.fit(features, [label for _, label in examples])
    return ctx.classifier


def router_examples(ctx: Arms, pairs: list[QAPair], limit: int = 80) -> list[tuple[str, str]]:
    """Labelled examples for the question-type router: which arm did better on each answered pair.

    Give it the dev side: tuning the router on the test side would score it on what it was tuned on.
    """
    sample = [p for p in pairs if p.answer][:limit]
    if not sample:
        raise WorkbenchError("the router's classifier needs answered pairs on the dev side to learn from")
    labels = oracle_labels({p.id: ctx.rag(p) for p in sample}, {p.id: ctx.ft(p) for p in sample})
    return [(p.question, labels[p.id]) for p in sample if p.id in labels]


def read_router_labels(name: str, data: bytes) -> list[tuple[str, str]]:
    """(question, 'rag' | 'ft') rows of a labelled CSV with the columns question and label."""
    import csv
    import io

    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    if not {"question", "label"} <= set(reader.fieldnames or []):
        raise WorkbenchError("needs the columns question and label", file=name)
    out = []
    for row in reader:
        label = (row["label"] or "").strip().lower()
        if label not in ("rag", "ft"):
            raise WorkbenchError(f"label must be rag or ft (got '{row['label']}')", file=name, line=reader.line_num)
        out.append((row["question"] or "", label))
    return out


def oracle_labels(rag_results: dict[str, QuestionResult], ft_results: dict[str, QuestionResult]
                  ) -> dict[str, str]:
    """For questions both arms answered: which arm did better (ties go to the cheaper fine-tuned arm)."""
    out = {}
    for qid in set(rag_results) & set(ft_results):
        out[qid] = "rag" if _score(rag_results[qid]) > _score(ft_results[qid]) else "ft"
    return out


def _score(r: QuestionResult) -> float:
    """Per-question correctness: token F1 on answerable questions, abstaining on unanswerable ones."""
    if not r.gold:
        return 1.0 if r.abstained else 0.0
    return 0.0 if r.abstained else metrics.token_f1(r.answer, r.gold)


# --- summary ----------------------------------------------------------------------------------------

def _with_ci(values: list[float], resamples: int, statistic: str = "mean") -> dict[str, float | int | None]:
    """A statistic, its bootstrap interval (empty below metrics.MIN_N values) and how many values it rests on."""
    if not values:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    value = float(np.mean(values)) if statistic == "mean" else metrics.percentile(values, float(statistic[1:]))
    low, high = metrics.bootstrap_ci(values, resamples, statistic=statistic)
    known = len(values) >= metrics.MIN_N
    return {"value": value, "ci_low": low if known else None, "ci_high": high if known else None, "n": len(values)}


def _gold(r: QuestionResult) -> dict[str, float] | list[str]:
    return r.gold_grades or r.gold_docs


def arm_metrics(rows: list[QuestionResult], similarity: dict[str, float], resamples: int = 2000) -> dict[str, Any]:
    """Every metric of one arm with its 95 % bootstrap interval (_ci_low / _ci_high) and its count (_n)."""
    answerable = [r for r in rows if r.gold and r.error is None]
    unanswerable = [r for r in rows if not r.gold and r.error is None]
    with_gold_docs = [r for r in rows if r.retrieved and r.gold_docs and r.error is None]
    ok = [r for r in rows if r.error is None]
    series: dict[str, tuple[list[float], str]] = {
        "exact_match": ([0.0 if r.abstained else metrics.exact_match(r.answer, r.gold) for r in answerable], "mean"),
        "f1": ([0.0 if r.abstained else metrics.token_f1(r.answer, r.gold) for r in answerable], "mean"),
        "semantic_similarity": ([similarity[r.question_id] for r in answerable if r.question_id in similarity], "mean"),
        "answered_rate": ([0.0 if r.abstained else 1.0 for r in answerable], "mean"),
        "abstention_rate": ([1.0 if r.abstained else 0.0 for r in unanswerable], "mean"),
        "fabrication_rate": ([0.0 if r.abstained else 1.0 for r in unanswerable], "mean"),
        "latency_ms_p50": ([sum(r.latency_ms.values()) for r in ok], "p50"),
        "latency_ms_p95": ([sum(r.latency_ms.values()) for r in ok], "p95"),
        "prompt_tokens": ([float(r.prompt_tokens) for r in ok], "mean"),
        "output_tokens": ([float(r.output_tokens) for r in ok], "mean"),
        "cost_per_query_usd": ([r.cost_usd for r in ok if r.cost_usd is not None], "mean"),
    }
    if with_gold_docs:
        series["hit_at_5"] = ([metrics.hit_at_k(r.retrieved, _gold(r), 5) for r in with_gold_docs], "mean")
        series["recall_at_5"] = ([metrics.recall_at_k(r.retrieved, _gold(r), 5) for r in with_gold_docs], "mean")
        series["mrr"] = ([metrics.reciprocal_rank(r.retrieved, _gold(r)) for r in with_gold_docs], "mean")
        series["ndcg_at_10"] = ([metrics.ndcg_at_k(r.retrieved, _gold(r), 10) for r in with_gold_docs], "mean")
        series["groundedness"] = ([metrics.groundedness(r.answer, r.context) for r in answerable
                                   if not r.abstained and r.context], "mean")
    out: dict[str, Any] = {}
    for name, (values, statistic) in series.items():
        stats = _with_ci(values, resamples, statistic)
        out[name] = stats["value"]
        out[f"{name}_ci_low"] = stats["ci_low"]
        out[f"{name}_ci_high"] = stats["ci_high"]
        out[f"{name}_n"] = stats["n"]
    stages: dict[str, list[float]] = {}
    for r in ok:
        for k, v in r.latency_ms.items():
            stages.setdefault(k, []).append(v)
    out["latency_ms_p50_by_stage"] = {k: metrics.percentile(v, 50) for k, v in stages.items()}
    out["latency_ms_p95_by_stage"] = {k: metrics.percentile(v, 95) for k, v in stages.items()}
    out["questions"] = len(rows)
    out["errors"] = sum(1 for r in rows if r.error)
    out["unpriced"] = sum(1 for r in ok if r.cost_usd is None)
    return out


def routing_accuracy(routed: list[dict[str, Any]], saved: dict[str, dict[str, QuestionResult]],
                     resamples: int = 2000) -> dict[str, Any]:
    """Over the questions where exactly one of RAG and the fine-tuned arm is right (score 0.5 or more):
    the share the router sent to the right one. Questions both got right, or both wrong, say nothing."""
    picked: list[float] = []
    compared = 0
    for r in routed:
        rag_r, ft_r = saved.get("rag", {}).get(r["question_id"]), saved.get("ft", {}).get(r["question_id"])
        if rag_r is None or ft_r is None or rag_r.error or ft_r.error:
            continue
        compared += 1
        rag_ok, ft_ok = _score(rag_r) >= 0.5, _score(ft_r) >= 0.5
        if rag_ok != ft_ok:
            picked.append(1.0 if r["routed_to"] == ("rag" if rag_ok else "ft") else 0.0)
    stats = _with_ci(picked, resamples)
    return {"routing_accuracy": stats["value"], "routing_accuracy_ci_low": stats["ci_low"],
            "routing_accuracy_ci_high": stats["ci_high"], "routing_accuracy_n": stats["n"],
            "arms_disagree_share": len(picked) / compared if compared else None, "routing_compared": compared}


def _base_model(provider: str) -> str:
    """The model under an arm's provider label: a LoRA of X is X (the arms then differ by the tuning only)."""
    name = provider.split(",")[0]
    return name.split(" of ", 1)[1] if name.startswith("LoRA ") and " of " in name else name


def _notes(ws: Workspace, questions: list[QAPair], settings: EvalSettings) -> list[str]:
    """What a reader must know to read the figures: settings tuned on these very questions."""
    from . import index, sample

    notes = []
    retrieval = index.load_settings(ws).retrieval
    defaults = index.RetrievalSettings()
    tuned = [k for k in TUNED_ON_SAMPLE if getattr(retrieval, k) == getattr(defaults, k)]
    on_sample = sample.sample_question_share(questions)
    if any(a in settings.arms for a in ("rag", "ft_rag", "router")) and tuned and on_sample:
        notes.append(f"The retrieval defaults ({', '.join(f'{k}={getattr(retrieval, k)}' for k in tuned)}) were "
                     f"chosen on the bundled sample's questions, and {on_sample:.0%} of these questions are from it: "
                     "the RAG figures are optimistic here. Judge RAG on questions of your own.")
    return notes


def summarize(ws: Workspace, run_id: str, embedder: Any | None = None) -> dict[str, Any]:
    """Metrics per arm with intervals, paired comparisons, routing accuracy, and the per-question table."""
    settings, questions = _load_run(ws, run_id)
    saved = results(ws, run_id)
    embedder = embedder or _local_embedder()
    found = _run_overlap(ws, run_id)
    out: dict[str, Any] = {"run": {"id": run_id, "questions": len(questions), "arms": settings.arms,
                                   "settings": settings.model_dump(), "overlap": found.get("count", 0),
                                   "overlap_detail": found or None, "contaminated": bool(found.get("count")),
                                   "notes": _notes(ws, questions, settings)}}
    by_q = {q.id: q for q in questions}
    arm_rows = {arm: [r for q in questions if (r := saved.get(arm, {}).get(q.id)) is not None]
                for arm in settings.arms}
    vector = _text_vectors(embedder, [t for rows in arm_rows.values() for r in rows
                                      if r.gold and not r.abstained and r.error is None for t in (r.answer, r.gold)])
    for arm in settings.arms:
        rows = arm_rows[arm]
        answered = [r for r in rows if r.gold and not r.abstained and r.error is None]
        similarity = {r.question_id: float(vector[r.answer] @ vector[r.gold]) for r in answered}
        similarity.update({r.question_id: 0.0 for r in rows if r.gold and r.abstained})
        figures = arm_metrics(rows, similarity, settings.bootstrap_resamples)
        extras = {k: figures.pop(k) for k in ("latency_ms_p50_by_stage", "latency_ms_p95_by_stage", "questions",
                                              "errors", "unpriced")}
        provider = next((r.provider for r in rows if r.provider), "")
        out[arm] = {"label": ARM_LABELS[arm], "provider": provider, "metrics": figures, **extras,
                    "model_speed": model_speed(rows),
                    "first_error": next((r.error for r in rows if r.error), None),
                    "per_question": [{**asdict(r), "score": _score(r), "f1": metrics.token_f1(r.answer, r.gold),
                                      "exact_match": metrics.exact_match(r.answer, r.gold)} for r in rows]}
        if extras["unpriced"]:
            out[arm]["cost_note"] = (f"{extras['unpriced']} answer(s) by {provider} have no known price, so the cost "
                                     "per query leaves them out; add the model's price as a custom price")
    by_model = {arm: out[arm]["provider"] for arm in settings.arms if arm != "router" and out[arm]["provider"]}
    if len({_base_model(p) for p in by_model.values()}) > 1:
        out["run"]["notes"].append(
            "The arms are answered by different models (" + "; ".join(f"{ARM_LABELS[a]}: {p}" for a, p in
                                                                by_model.items())
            + "), so a gap between two arms is partly a gap between their models, not only between fine-tuning "
              "and retrieval.")
    scores = {arm: {r["question_id"]: r["score"] for r in out[arm]["per_question"] if r["error"] is None}
              for arm in settings.arms}
    comparisons = []
    arms = settings.arms
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            common = [q.id for q in questions if q.id in scores[a] and q.id in scores[b]]
            comparisons.append({"a": a, "b": b, "metric": "score", **metrics.paired_difference(
                [scores[a][q] for q in common], [scores[b][q] for q in common], settings.bootstrap_resamples)})
    out["comparisons"] = comparisons
    if "router" in arms:
        routed = [r for r in out["router"]["per_question"] if r["error"] is None]
        out["router"].update(routing_accuracy(routed, saved, settings.bootstrap_resamples))
        out["router"]["routed_share_rag"] = float(np.mean([r["routed_to"] == "rag" for r in routed])) if routed else None
    categories = sorted({by_q[q].category or ("unanswerable" if not by_q[q].answer else "factual") for q in by_q})
    out["by_category"] = {arm: {c: float(np.mean(v)) for c in categories
                                if (v := [r["score"] for r in out[arm]["per_question"]
                                          if r["category"] == c and r["error"] is None])}
                          for arm in arms}
    synthetic = {q.id for q in questions if q.source == GENERATED_SOURCE}
    if synthetic:
        out["by_origin"] = {arm: _by_origin(out[arm]["per_question"], synthetic, settings.bootstrap_resamples)
                            for arm in arms}
    return out


def _text_vectors(embedder: Any, texts: list[str]) -> dict[str, np.ndarray]:
    """Each distinct text embedded once: the arms share their gold answers, and the router repeats the answers
    of the arm it picked."""
    distinct = list(dict.fromkeys(texts))
    if not distinct:
        return {}
    return dict(zip(distinct, np.asarray(embedder.embed(distinct))))


def _by_origin(rows: list[dict[str, Any]], synthetic: set[str], resamples: int) -> dict[str, dict[str, Any]]:
    """Mean score (F1 on answerable, 1 for abstaining on unanswerable) and F1 on the generated questions and
    on the hand-written ones apart, each with its n and interval: a synthetic set can flatter or hurt an arm."""
    out = {}
    for origin, keep in (("synthetic", True), ("hand-written", False)):
        chosen = [r for r in rows if (r["question_id"] in synthetic) == keep and r["error"] is None]
        score = _with_ci([r["score"] for r in chosen], resamples)
        f1 = _with_ci([r["f1"] for r in chosen if r["gold"]], resamples)
        out[origin] = {"n": len(chosen), "score": score["value"], "score_ci_low": score["ci_low"],
                       "score_ci_high": score["ci_high"], "f1_n": f1["n"], "f1": f1["value"],
                       "f1_ci_low": f1["ci_low"], "f1_ci_high": f1["ci_high"]}
    return out


def model_speed(rows: list[QuestionResult]) -> dict[str, Any] | None:
    """A local model's speed on this machine, from its own timings: time to first token as a fixed part
    plus a part per 1k prompt tokens (least squares over the answers), and median decode tokens/s."""
    timed = [r for r in rows if r.error is None and r.timings.get("tokens_per_s") and r.prompt_tokens]
    if len(timed) < 2:
        return None
    prompt = np.array([r.prompt_tokens for r in timed], dtype=float)
    ttft = np.array([r.timings.get("time_to_first_token_ms", 0.0) for r in timed], dtype=float)
    slope, fixed = np.polyfit(prompt, ttft, 1) if np.ptp(prompt) > 0 else (0.0, float(np.median(ttft)))
    if fixed < 0:                      # a line through the origin when the fit would start below zero
        slope, fixed = float(prompt @ ttft / (prompt @ prompt)), 0.0
    return {"ttft_ms": float(fixed), "ms_per_1k_prompt_tokens": float(max(slope, 0.0) * 1000),
            "output_tokens_per_s": float(np.median([r.timings["tokens_per_s"] for r in timed])),
            "time_to_first_token_ms_p50": float(np.median(ttft)), "prompt_tokens_p50": float(np.median(prompt)),
            "n": len(timed)}


def _local_embedder() -> Any:
    from .providers.local_embedder import LocalEmbedder
    return LocalEmbedder()


def save_measured(ws: Workspace, summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Measured latency, tokens and cost per query of each arm, for the Estimate step to show beside its figures."""
    measured = {}
    for arm, option in ESTIMATE_OPTION.items():
        if arm not in summary:
            continue
        m = summary[arm]["metrics"]
        measured[option] = {"arm": arm, "label": summary[arm]["label"], "provider": summary[arm]["provider"],
                            "latency_ms_p50": m["latency_ms_p50"], "latency_ms_p95": m["latency_ms_p95"],
                            "latency_ms_p50_by_stage": summary[arm]["latency_ms_p50_by_stage"],
                            "prompt_tokens": m["prompt_tokens"], "output_tokens": m["output_tokens"],
                            "cost_per_query_usd": m["cost_per_query_usd"], "run_id": summary["run"]["id"],
                            "model_speed": summary[arm].get("model_speed"),
                            "questions": summary["run"]["questions"], "measured_at": time.time()}
    ws.set_state(MEASURED_KEY, measured)
    return measured


def measured_figures(ws: Workspace) -> dict[str, dict[str, Any]]:
    return ws.get_state(MEASURED_KEY) or {}


def default_questions(ws: Workspace) -> list[QAPair]:
    """The test side of the Fine-tune split (made now if there is none): questions no model trained or tuned on."""
    from . import splits

    split = splits.saved_split(ws) or splits.make_split(ws)
    test = splits.sides(ws, split).test
    if not test:
        raise WorkbenchError("no test questions: add question/answer pairs on the Data page")
    return test


def sample_questions(questions: list[QAPair], n: int | None, seed: int = 0) -> list[QAPair]:
    """A seeded sample of n questions for a quicker run (a slow local model), answerable and unanswerable
    ones in their shares; all of them when n is None, 0 or not below the count. Order is kept."""
    if not n or n >= len(questions):
        return list(questions)
    groups = [[q for q in questions if q.answer], [q for q in questions if not q.answer]]
    take = [min(len(g), round(n * len(g) / len(questions))) for g in groups]
    for i in (0, 1):                      # rounding: give the rest to whichever group has room
        while sum(take) < n and take[i] < len(groups[i]):
            take[i] += 1
    while sum(take) > n:
        take[take.index(max(take))] -= 1
    rng = np.random.default_rng(seed)
    chosen = {g[j].id for g, k in zip(groups, take) for j in rng.choice(len(g), size=k, replace=False)}
    return [q for q in questions if q.id in chosen]


def build_arms(ws: Workspace, settings: EvalSettings) -> Arms:
    """The arms with the configured providers (offline stand-ins unless configured otherwise)."""
    from . import index, providers

    cfg = providers.load_providers_config()
    embedder = providers.get_embedder(cfg)
    retriever = None
    if any(a in settings.arms for a in ("rag", "ft_rag", "router")):
        if index.index_meta(ws) is None or index.index_is_stale(ws):
            index.build_index(ws, embedder)
        retriever = Retriever(ws, embedder)
    book = load_pricing().with_custom(saved_custom_prices(ws), source="custom prices")
    return Arms(ws, settings, providers.get_chat_model(cfg), embedder, retriever, book=book,
                context_window=cfg.chat_context_window)


# --- optional LLM judge -----------------------------------------------------------------------------

JUDGE_SYSTEM = ("You grade answers to questions about a product's documentation. Reply with JSON only: "
                '{"correct": true or false, "faithful": true or false}. correct: the candidate answer means the '
                "same as the reference answer. faithful: every claim in the candidate is supported by the context "
                "(true when there is no context and the candidate makes no claim).")
JUDGE_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["correct", "faithful"],
                                "properties": {"correct": {"type": "boolean"}, "faithful": {"type": "boolean"}}}


def _verdict(text: str) -> dict[str, bool] | None:
    data = rag.json_object(text)
    if data is None or not isinstance(data.get("correct"), bool):
        return None
    return {"correct": data["correct"], "faithful": bool(data.get("faithful", data["correct"]))}


def judge(ws: Workspace, run_id: str, chat: Any, concurrency: int = 4) -> dict[str, dict[str, Any]]:
    """Ask a chat model to grade every answered, answerable question; verdicts are saved and reused.

    Returns per arm: how many were judged, the judge's correct and faithful rates, and its agreement with
    the automatic metric (token F1 of 0.5 or more counted as correct).
    """
    if not chat.generative:
        raise WorkbenchError(f"the LLM judge needs a chat model that writes its own answers, not {chat.label}: "
                             "configure one in configs/providers.yaml")
    saved = results(ws, run_id)
    key = f"judge:{run_id}"
    verdicts: dict[str, Any] = ws.get_state(key) or {}
    todo = [(arm, r) for arm, rows in saved.items() for r in rows.values()
            if r.gold and not r.abstained and r.error is None and f"{arm}:{r.question_id}" not in verdicts]

    def ask(item: tuple[str, QuestionResult]) -> tuple[str, dict[str, bool] | None]:
        arm, r = item
        user = (f"Question: {r.question}\nReference answer: {r.gold}\nCandidate answer: {r.answer}\n"
                f"Context:\n{r.context or '(none)'}")
        messages = [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]
        verdict = None
        for _ in range(2):   # constrained where the backend can; one retry for a server that ignored the schema
            verdict = _verdict(chat.complete(messages, max_tokens=50, schema=JUDGE_SCHEMA).text)
            if verdict is not None:
                break
        return f"{arm}:{r.question_id}", verdict

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for k, v in pool.map(ask, todo):
            verdicts[k] = v
    ws.set_state(key, verdicts)
    report: dict[str, dict[str, Any]] = {}
    for arm, rows in saved.items():
        graded = [(r, verdicts.get(f"{arm}:{r.question_id}")) for r in rows.values()]
        graded = [(r, v) for r, v in graded if v is not None]
        if not graded:
            report[arm] = {"judged": 0, "correct_rate": None, "faithful_rate": None, "agreement_with_f1": None}
            continue
        agree = [float(v["correct"] == (metrics.token_f1(r.answer, r.gold) >= 0.5)) for r, v in graded]
        report[arm] = {"judged": len(graded),
                       "correct_rate": float(np.mean([v["correct"] for _, v in graded])),
                       "faithful_rate": float(np.mean([v["faithful"] for _, v in graded])),
                       "agreement_with_f1": float(np.mean(agree))}
    return report
