"""The offline stand-in for a fine-tuned LLM: a small model trained on the Q&A pairs, on the CPU, in seconds.

Not an LLM. Like a fine-tuned model it answers without retrieval and can only know what was in its
training pairs. It reads a question through the frozen local embedder and learns a linear layer that
predicts the words of the answer (softmax cross-entropy over the training answers' vocabulary, Adam,
with epochs, a learning rate, validation loss per epoch and early stopping). To answer, it picks the
training answer whose words the model finds most likely for the question (mean log-probability),
so it answers every question, including those it was never taught, as a fine-tuned model would.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import WorkbenchError
from ..text import words
from .protocols import JobStatus

if TYPE_CHECKING:
    import numpy as np


def answer_words(text: str) -> list[str]:
    """The words the model predicts: text.words, with "3.5" and "don't" kept whole (a number or a word)."""
    return words(text, joiners=".'")


@dataclass
class Hyperparameters:
    epochs: int = 40
    learning_rate: float = 0.01
    batch_size: int = 32
    weight_decay: float = 1e-4
    patience: int = 5             # epochs without a better validation loss before stopping
    seed: int = 0


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    valid_loss: float | None
    train_accuracy: float         # share of training questions answered with their own answer


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    metrics: list[EpochMetrics]
    seconds: float
    examples: int
    vocabulary: int
    answers: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LocalModel:
    """The trained weights and the answers it can give."""

    weights: np.ndarray
    bias: np.ndarray
    vocabulary: list[str]
    answers: list[str]
    answer_tokens: list[list[int]] = field(repr=False, default_factory=list)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return _softmax(features @ self.weights + self.bias)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Mean log-probability of each known answer's words, per question: (questions, answers)."""
        import numpy as np

        logp = np.log(self.probabilities(features) + 1e-12)
        return np.stack([logp[:, ids].mean(axis=1) if ids else np.full(len(features), -np.inf)
                         for ids in self.answer_tokens], axis=1)

    def text_scores(self, features: np.ndarray, texts: list[str]) -> np.ndarray:
        """Mean log-probability of each text's known words for one question (unknown words score the minimum)."""
        import numpy as np

        logp = np.log(self.probabilities(features[:1]) + 1e-12)[0]
        index = {w: i for i, w in enumerate(self.vocabulary)}
        floor = float(logp.min())
        return np.array([np.mean([logp[index[w]] if w in index else floor for w in answer_words(t)] or [floor])
                         for t in texts])

    def answer(self, features: np.ndarray) -> list[tuple[str, float]]:
        """(answer, confidence) per question: the best answer and its softmax weight among all answers."""
        import numpy as np

        s = self.scores(features)
        best = s.argmax(axis=1)
        conf = _softmax(s * 10.0)[np.arange(len(best)), best]
        return [(self.answers[i], float(c)) for i, c in zip(best, conf)]

    def to_bytes(self) -> bytes:
        import numpy as np

        buf = io.BytesIO()
        np.savez_compressed(buf, weights=self.weights, bias=self.bias, vocabulary=np.array(self.vocabulary, dtype=str),
                            answers=np.array(self.answers, dtype=str))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalModel:
        import numpy as np

        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            vocabulary = [str(v) for v in z["vocabulary"]]
            answers = [str(a) for a in z["answers"]]
            model = cls(z["weights"], z["bias"], vocabulary, answers)
        index = {w: i for i, w in enumerate(vocabulary)}
        model.answer_tokens = [[index[w] for w in answer_words(a) if w in index] for a in answers]
        return model


def _softmax(z: np.ndarray) -> np.ndarray:
    import numpy as np

    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _targets(answers: list[str], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised word counts of each answer over the vocabulary, and which rows have any known word."""
    import numpy as np

    y = np.zeros((len(answers), len(index)), dtype=np.float32)
    for r, a in enumerate(answers):
        for w in answer_words(a):
            if w in index:
                y[r, index[w]] += 1
    totals = y.sum(axis=1, keepdims=True)
    keep = totals[:, 0] > 0
    y[keep] /= totals[keep]
    return y, keep


def _loss(model: LocalModel, x: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    return float(-(y * np.log(model.probabilities(x) + 1e-12)).sum(axis=1).mean())


def train(train_pairs: list[tuple[str, str]], valid_pairs: list[tuple[str, str]], embed: Callable[[list[str]], np.ndarray],
          hp: Hyperparameters = Hyperparameters(),
          on_epoch: Callable[[EpochMetrics], None] | None = None) -> tuple[LocalModel, TrainResult]:
    """Train on (question, answer) pairs; validation pairs drive early stopping."""
    import numpy as np

    if len(train_pairs) < 2:
        raise WorkbenchError("the local trainer needs at least 2 training pairs")
    started = time.perf_counter()
    rng = np.random.default_rng(hp.seed)
    answers = sorted({a for _, a in train_pairs})
    vocabulary = sorted({w for a in answers for w in answer_words(a)})
    index = {w: i for i, w in enumerate(vocabulary)}
    x = np.asarray(embed([q for q, _ in train_pairs]), dtype=np.float32)
    y, keep = _targets([a for _, a in train_pairs], index)
    x, y = x[keep], y[keep]
    gold = np.array([answers.index(a) for (_, a), k in zip(train_pairs, keep) if k])
    xv = yv = None
    if valid_pairs:
        xv = np.asarray(embed([q for q, _ in valid_pairs]), dtype=np.float32)
        yv, keep_v = _targets([a for _, a in valid_pairs], index)
        xv, yv = (xv[keep_v], yv[keep_v]) if keep_v.any() else (None, None)
    model = LocalModel(rng.normal(0, 0.01, (x.shape[1], len(vocabulary))).astype(np.float32),
                       np.zeros(len(vocabulary), dtype=np.float32), vocabulary, answers,
                       [[index[w] for w in answer_words(a)] for a in answers])
    params = [model.weights, model.bias]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, step = 0.9, 0.999, 0
    best = (np.inf, 0, [p.copy() for p in params])
    metrics: list[EpochMetrics] = []
    stopped = False
    for epoch in range(1, hp.epochs + 1):
        order = rng.permutation(len(x))
        for start in range(0, len(x), hp.batch_size):
            batch = order[start:start + hp.batch_size]
            xb, yb = x[batch], y[batch]
            grad_z = (model.probabilities(xb) - yb) / len(batch)
            grads = [xb.T @ grad_z + hp.weight_decay * model.weights, grad_z.sum(axis=0)]
            step += 1
            for p, g, mi, vi in zip(params, grads, m, v):
                mi *= beta1
                mi += (1 - beta1) * g
                vi *= beta2
                vi += (1 - beta2) * g * g
                p -= hp.learning_rate * (mi / (1 - beta1 ** step)) / (np.sqrt(vi / (1 - beta2 ** step)) + 1e-8)
        train_loss = _loss(model, x, y)
        valid_loss = _loss(model, xv, yv) if xv is not None else None
        accuracy = float((model.scores(x).argmax(axis=1) == gold).mean())
        row = EpochMetrics(epoch, round(train_loss, 5), None if valid_loss is None else round(valid_loss, 5),
                           round(accuracy, 4))
        metrics.append(row)
        if on_epoch:
            on_epoch(row)
        watched = valid_loss if valid_loss is not None else train_loss
        if watched < best[0] - 1e-4:
            best = (watched, epoch, [p.copy() for p in params])
        elif epoch - best[1] >= hp.patience:
            stopped = True
            break
    model.weights, model.bias = best[2]
    result = TrainResult(epochs_run=len(metrics), best_epoch=best[1], stopped_early=stopped, metrics=metrics,
                         seconds=round(time.perf_counter() - started, 3), examples=len(x),
                         vocabulary=len(vocabulary), answers=len(answers))
    return model, result


class LocalFineTuner:
    """The local trainer as a fine-tuner backend: it trains in the app's process, in seconds, on the job's
    workspace (`finetune.run_local`, with its default hyperparameters unless the job gives some)."""

    name = "local"
    label = "Local trainer (offline stand-in for a fine-tuned LLM)"
    offline = True

    def launch(self, job: Any) -> Any:
        from .. import finetune

        if job.workspace is None:
            raise WorkbenchError("the local trainer saves its model in a workspace: the job needs one")
        hp = Hyperparameters(**{k: v for k, v in job.hyperparameters.items() if k in Hyperparameters.__dataclass_fields__})
        return JobStatus.of_saved(finetune.run_local(job.workspace, hp))

    def check(self, examples: list[dict[str, Any]], model: str) -> Any:
        from ..training_data import check

        return check(examples, model)

    def chat_model(self, fine_tuned_model: str) -> None:
        return None   # it answers through evaluation's local arm: it picks a training answer, it does not chat

    def status(self, job_id: str) -> Any:
        raise WorkbenchError(f"{job_id} ran in this process and finished; its state is in the workspace")

    def cancel(self, job_id: str) -> Any:
        raise WorkbenchError(f"{job_id} ran in this process and finished; there is nothing to cancel")



def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend("fine_tuner", "local", LocalFineTuner.label, True, lambda s, cfg: LocalFineTuner()))
