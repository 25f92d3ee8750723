"""What a provider of each role is: one typed Protocol per role, and the dataclasses they return.

Backends implement these and register under a name (see registry.py); the rest of the library only
talks to the protocols, so a new backend never needs a branch anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class Embedder(Protocol):
    name: str
    label: str
    offline: bool
    model_id: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors, one row per text."""


@dataclass
class Grounding:
    """Retrieved passages a chat model answers from, with what an answerer that only quotes needs."""

    question: str
    passages: list[str]
    relevance: list[float]
    embedder: Any
    min_relevance: float = -1.0
    coverage: float = 1.0
    missing: list[str] = field(default_factory=list)
    min_coverage: float = 0.0
    prior: Callable[[list[str]], Any] | None = None   # a fine-tuned model's preference among sentences


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    abstained: bool = False          # the model said it cannot answer (its fixed refusal form, or its own flag)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # e.g. time_to_first_token_ms, tokens_per_s


@runtime_checkable
class ChatModel(Protocol):
    name: str
    label: str
    offline: bool
    model_id: str
    generative: bool                 # writes its own text (False: only quotes passages, so it cannot grade)

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 512, grounding: Grounding | None = None, *,
                 schema: dict[str, Any] | None = None, on_token: Callable[[str], None] | None = None) -> ChatResult:
        """Answer a chat request; `grounding` carries the retrieved passages the messages were built from.

        `schema`: a JSON schema the reply must follow (constrained decoding where the backend has it).
        `on_token`: called with each piece of text as it is generated (once with the whole text by a
        backend that does not stream).
        """


@dataclass
class JobEvent:
    created_at: float
    level: str
    message: str
    type: str | None = None
    data: dict[str, Any] | None = None


@dataclass
class JobStatus:
    id: str
    state: str                       # validating_files, queued, running, succeeded, failed, cancelled
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: str | None = None
    events: list[JobEvent] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)   # step, train_loss, valid_loss, train_accuracy

    @classmethod
    def of_saved(cls, saved: dict[str, Any]) -> JobStatus:
        """The status of a job as the workspace saved it (an in-process trainer's job)."""
        return cls(saved["id"], saved["state"], saved["fine_tuned_model"], None, saved["error"],
                   [JobEvent(**e) for e in saved["events"]], saved["metrics"])


@dataclass
class JobRequest:
    """A fine-tuning job: chat examples of the train side and of the dev side (never the test side)."""

    model: str
    train: list[dict[str, Any]]
    dev: list[dict[str, Any]]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    workspace: Any = None            # where an in-process trainer saves its model


@runtime_checkable
class FineTuner(Protocol):
    name: str
    label: str
    offline: bool

    def check(self, examples: list[dict[str, Any]], model: str) -> Any:
        """The training data checks this provider needs before a job (a training_data.DataReport)."""

    def launch(self, job: JobRequest) -> JobStatus:
        """Start a job; returns as soon as the provider has given it an id."""

    def status(self, job_id: str) -> JobStatus:
        """The job's state, events and metrics so far."""

    def cancel(self, job_id: str) -> JobStatus:
        """Ask the provider to stop the job."""

    def chat_model(self, fine_tuned_model: str) -> ChatModel | None:
        """The model a finished job yields, as a chat model for the fine-tuned arm (None: it answers otherwise)."""


@dataclass
class VectorHit:
    row: int                         # the chunk's row (its id in the chunk table)
    score: float


@dataclass
class StoreStats:
    vectors: int
    dimensions: int
    approximate: bool
    where: str                       # a file path, or a server URL


@runtime_checkable
class VectorStore(Protocol):
    name: str
    label: str
    offline: bool

    def add(self, rows: list[int], vectors: np.ndarray) -> None:
        """Add (or replace) the vectors of these chunk rows."""

    def delete(self, rows: list[int]) -> None:
        """Remove the vectors of these chunk rows."""

    def search(self, query: np.ndarray, k: int) -> list[VectorHit]:
        """The k nearest rows by inner product (cosine on unit vectors), best first."""

    def vectors(self, rows: list[int]) -> np.ndarray:
        """The stored vectors of these rows, in that order."""

    def persist(self) -> None:
        """Write what was added or deleted, atomically."""

    def stats(self) -> StoreStats:
        """How many vectors, of what size, where."""

    def close(self) -> None:
        """Release what the store holds (a file lock, a connection); nothing more may be done with it."""
