"""Keep what a retiring fine-tuned model says: run it now over the workspace's questions and store its
answers as a frozen arm, so Compare can still set a replacement against it after the model stops serving.

Answers are stored one by one as they come (a stopped or failed capture resumes where it ended); the
capture records what the model was trained on when a job of this workspace trained it, so Compare keeps
refusing to score it on questions it saw.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from . import corpus, rag
from .errors import WorkbenchError
from .overlap import TrainingRecord
from .parsing import QAPair
from .workspace import Workspace


@dataclass
class Capture:
    id: str
    model: str                       # the fine-tuned model id that answered
    label: str                       # "<model> (answers captured <date>)"
    created_at: float
    answered: int
    questions: int
    trained_on: TrainingRecord | None

    @property
    def complete(self) -> bool:
        return self.answered >= self.questions


def capture_id(model: str) -> str:
    """One capture per model id: capturing the same model again asks only the questions it has no answer to."""
    return "capture-" + hashlib.sha1(model.encode()).hexdigest()[:10]


def captures(ws: Workspace) -> list[Capture]:
    with ws.db() as db:
        rows = db.execute("SELECT c.id, c.model, c.created_at, c.questions, c.trained_on, "
                          "(SELECT COUNT(*) FROM captured_answers a WHERE a.capture_id = c.id) "
                          "FROM captures c ORDER BY c.created_at DESC").fetchall()
    return [Capture(r[0], r[1], f"{r[1]} (answers captured {dt.date.fromtimestamp(r[2]).isoformat()})", r[2], r[5],
                    r[3], TrainingRecord.from_dict(json.loads(r[4])) if r[4] != "null" else None) for r in rows]


def get_capture(ws: Workspace, cid: str) -> Capture:
    found = [c for c in captures(ws) if c.id == cid or c.model == cid]
    if not found:
        known = ", ".join(c.id for c in captures(ws)) or "none"
        raise WorkbenchError(f"no captured answers '{cid}' in workspace '{ws.name}'; captured: {known}")
    return found[0]


def answers(ws: Workspace, cid: str) -> dict[str, dict[str, Any]]:
    """The captured answers by question id."""
    with ws.db() as db:
        rows = db.execute("SELECT question_id, question, answer, abstained, prompt_tokens, completion_tokens, "
                          "latency_ms FROM captured_answers WHERE capture_id = ?", (cid,)).fetchall()
    return {r[0]: {"question": r[1], "answer": r[2], "abstained": bool(r[3]), "prompt_tokens": r[4],
                   "completion_tokens": r[5], "latency_ms": r[6]} for r in rows}


def capture(ws: Workspace, model: str, chat: Any = None, questions: list[QAPair] | None = None,
            on_answer: Callable[[int, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Capture:
    """Ask `model` (an OpenAI fine-tuned model id, through the configured OpenAI-compatible server unless a
    chat model is given) every question of the workspace, as the fine-tuned arm asks them, and store each
    answer as it comes. Questions already captured are skipped."""
    from .finetune import FineTuneSettings

    from .finetune import HOSTED_NAMES, jobs

    job = next((j for j in jobs(ws) if j.get("fine_tuned_model") == model), None)
    if chat is None:   # through the service that trained it (OpenAI unless a job of this workspace says otherwise)
        from .providers import get_fine_tuner

        provider = job["provider"] if job and job["provider"] in HOSTED_NAMES else "openai"
        chat = get_fine_tuner(name=provider).chat_model(model)
    pairs = questions if questions is not None else corpus.qa_pairs(ws)
    if not pairs:
        raise WorkbenchError(f"workspace '{ws.name}' has no questions to capture answers to")
    cid = capture_id(model)
    record = TrainingRecord.from_dict(job.get("trained_on")) if job else None
    with ws.db() as db:
        db.execute("INSERT INTO captures (id, model, created_at, questions, trained_on) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT(id) DO UPDATE SET questions = excluded.questions",
                   (cid, model, time.time(), len(pairs), json.dumps(record.to_dict() if record else None)))
    done = set(answers(ws, cid)) & {p.id for p in pairs}   # answers to questions since removed do not count
    system = FineTuneSettings.load(ws).system_prompt
    prompts = rag.load_prompts()
    todo = [p for p in pairs if p.id not in done]
    for n, p in enumerate(todo, 1):
        if should_stop and should_stop():
            break
        messages = ([{"role": "system", "content": system}] if system else []) + \
            [{"role": "user", "content": p.question}]
        t0 = time.perf_counter()
        out = chat.complete(messages, max_tokens=prompts.rag.max_output_tokens)
        with ws.db() as db:
            db.execute("INSERT OR REPLACE INTO captured_answers (capture_id, question_id, question, answer, abstained, "
                       "prompt_tokens, completion_tokens, latency_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (cid, p.id, p.question, out.text, int(out.abstained or rag.is_refusal(out.text, prompts)),
                        out.prompt_tokens, out.completion_tokens, (time.perf_counter() - t0) * 1000, time.time()))
        if on_answer:
            on_answer(len(done) + n, len(pairs))
    return get_capture(ws, cid)


def record_training(ws: Workspace, cid: str, pairs: list[QAPair]) -> Capture:
    """Record what a captured model was trained on (for a model no job of this workspace trained)."""
    record = TrainingRecord.of(pairs, [], note="the training file given at capture")
    with ws.db() as db:
        db.execute("UPDATE captures SET trained_on = ? WHERE id = ?", (json.dumps(record.to_dict()), cid))
    return get_capture(ws, cid)


def to_dict(c: Capture) -> dict[str, Any]:
    out = asdict(c)
    out["trained_on"] = c.trained_on.to_dict() if c.trained_on else None
    out["complete"] = c.complete
    return out
