"""The fine-tuner role as a real LoRA of the local model: transformers + peft on torch (the `lora` extra).

The base model is the one the chat role runs (the bundled SmolLM2-135M-Instruct GGUF, which transformers
reads with the `gguf` package) or a Hugging Face model folder on disk; nothing is downloaded. Loss is on
the assistant tokens only, through the model's chat template; dev loss per epoch decides early stopping
(never the test side); a checkpoint per epoch lets a crashed run resume from the last one; the adapter is
saved in PEFT format, which vLLM, Ollama (ADAPTER) and llama.cpp's LoRA converter read.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import math
import random
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import Field

from ..config import Strict
from ..errors import WorkbenchError
from .llamacpp import LlamaCppSettings
from .protocols import JobStatus

INSTALL = 'pip install -e ".[lora]"'
LABEL = "LoRA of the local model (transformers + peft, on this machine)"
NEEDS = ("torch", "transformers", "peft", "gguf")


class LoraSettings(Strict):
    base_model: str | None = None          # a Hugging Face model folder; None: the bundled SmolLM2 GGUF
    rank: Annotated[int, Field(ge=1, le=256)] = 8
    alpha: Annotated[int, Field(ge=1, le=1024)] = 16
    target_modules: list[str] = ["q_proj", "v_proj"]
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 2e-4
    epochs: Annotated[int, Field(ge=1, le=100)] = 3
    batch_size: Annotated[int, Field(ge=1, le=512)] = 8
    max_length: Annotated[int, Field(ge=16, le=32_768)] = 256
    patience: Annotated[int, Field(ge=1, le=100)] = 1      # epochs without a better dev loss before stopping
    seed: int = 0
    threads: Annotated[int, Field(ge=1, le=64)] = 2


def missing() -> str | None:
    absent = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    return f"{', '.join(absent)} not installed: {INSTALL}" if absent else None


@dataclass
class StepMetrics:
    epoch: int
    step: int
    steps: int                  # steps per epoch
    train_loss: float
    seconds_left: float


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    valid_loss: float | None
    seconds: float


@dataclass
class LoraResult:
    epochs: list[EpochResult] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    resumed_from: int = 0       # the last finished epoch a crashed run was resumed from (0: a fresh run)
    cancelled: bool = False
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BASES: dict[tuple[str, str], tuple[Any, Any]] = {}
_BASES_LOCK = threading.Lock()


def base_source(settings: LoraSettings) -> tuple[str, str | None]:
    """(folder, gguf file name or None) of the base model, checked to exist."""
    if settings.base_model:
        folder = Path(settings.base_model).expanduser()
        if not (folder / "config.json").is_file():
            raise WorkbenchError(f"no Hugging Face model folder at {folder} (it needs config.json)",
                                 field="fine_tuner.base_model")
        return str(folder), None
    from .llamacpp import bundled_model

    path = bundled_model()
    return str(path.parent), path.name


def base_name(settings: LoraSettings) -> str:
    """The base model's name as the chat role labels it (so a LoRA and its base read as one model)."""
    return Path(settings.base_model).name if settings.base_model else "SmolLM2-135M-Instruct"


def load_base(settings: LoraSettings) -> tuple[Any, Any]:
    """The base model in float32 and its tokenizer, read once per process (a fresh copy of the weights is
    made for each training run so the cached base stays untouched)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()       # the page and the CLI show their own progress
    folder, gguf = base_source(settings)
    key = (folder, gguf or "")
    with _BASES_LOCK:
        if key not in _BASES:
            kw: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kw)
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32, **kw)
            model.eval()
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            _BASES[key] = (model, tokenizer)
        return _BASES[key]


def encode(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of a chat example and its labels: the assistant reply's tokens, -100 elsewhere."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise WorkbenchError("the model's chat template does not put the reply after the prompt; cannot mask "
                             "the prompt tokens")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + reply_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + reply_ids)[:max_length]
    return ids, labels


def _batches(items: list[tuple[list[int], list[int]]], size: int, pad: int) -> list[tuple[Any, Any, Any]]:
    import torch

    out = []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (x, y) in enumerate(chunk):
            ids[i, :len(x)], labels[i, :len(y)], mask[i, :len(x)] = torch.tensor(x), torch.tensor(y), 1
        out.append((ids, labels, mask))
    return out


def _mean_loss(model: Any, batches: list[tuple[Any, Any, Any]]) -> float:
    """Token-weighted loss over the assistant tokens of every batch."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels, mask in batches:
            n = int((labels[:, 1:] != -100).sum())
            if n:
                total += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss) * n
                count += n
    return total / count if count else math.nan


def _last_checkpoint(checkpoints: Path) -> tuple[int, Path | None]:
    done = sorted((int(p.name.split("-")[1]), p) for p in checkpoints.glob("epoch-*")
                  if (p / "state.json").is_file())
    return done[-1] if done else (0, None)


def train(train_examples: list[dict[str, Any]], dev_examples: list[dict[str, Any]], settings: LoraSettings,
          out_dir: Path, on_step: Callable[[StepMetrics], None] | None = None,
          on_epoch: Callable[[EpochResult], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> LoraResult:
    """Train a LoRA adapter on chat examples and save the best epoch's adapter (by dev loss) in out_dir/adapter.

    Each finished epoch leaves out_dir/checkpoints/epoch-N (adapter, optimizer, history); called again on
    the same out_dir after a crash, training resumes after the last checkpoint. `should_stop` is asked
    between steps; a cancelled run keeps its checkpoints and best adapter so far.
    """
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from peft.utils import get_peft_model_state_dict

    if not train_examples:
        raise WorkbenchError("no training examples: the train side of the split is empty")
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    base, tokenizer = load_base(settings)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                                                   target_modules=list(settings.target_modules), lora_dropout=0.0,
                                                   task_type="CAUSAL_LM"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
    checkpoints = out_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    result = LoraResult(device=device)
    start_epoch, last = _last_checkpoint(checkpoints)
    best_loss = math.inf
    if last is not None:          # resume: the adapter, optimizer and history of the last finished epoch
        state = json.loads((last / "state.json").read_text())
        set_peft_model_state_dict(model, torch.load(last / "adapter.pt", weights_only=True))
        optimizer.load_state_dict(torch.load(last / "optimizer.pt", weights_only=True))
        result.epochs = [EpochResult(**e) for e in state["epochs"]]
        result.best_epoch, best_loss = state["best_epoch"], state["best_loss"]
        result.resumed_from = start_epoch
    # an example whose answer falls past max_length has nothing to learn from (and a NaN loss)
    encoded = [x for x in (encode(tokenizer, e["messages"], settings.max_length) for e in train_examples)
               if any(y != -100 for y in x[1][1:])]
    if not encoded:
        raise WorkbenchError(f"every training example's answer falls past max_length ({settings.max_length} "
                             "tokens): raise max_length", field="fine_tuner.max_length")
    dev = _batches([x for x in (encode(tokenizer, e["messages"], settings.max_length) for e in dev_examples)
                    if any(y != -100 for y in x[1][1:])], settings.batch_size, tokenizer.pad_token_id)
    rng = random.Random(settings.seed)
    orders = [rng.sample(range(len(encoded)), len(encoded)) for _ in range(settings.epochs)]
    steps = math.ceil(len(encoded) / settings.batch_size)
    since_best = sum(1 for e in result.epochs if e.epoch > result.best_epoch)
    started = time.perf_counter()
    done_steps = 0
    for epoch in range(start_epoch + 1, settings.epochs + 1):
        if result.epochs and since_best >= settings.patience:
            result.stopped_early = True
            break
        t0, losses = time.perf_counter(), []
        model.train()
        for step, (ids, labels, mask) in enumerate(_batches([encoded[i] for i in orders[epoch - 1]],
                                                            settings.batch_size, tokenizer.pad_token_id), 1):
            if should_stop and should_stop():
                result.cancelled = True
                return result
            loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            done_steps += 1
            if on_step:
                per_step = (time.perf_counter() - started) / done_steps
                left = (settings.epochs - epoch) * steps + (steps - step)
                on_step(StepMetrics(epoch, step, steps, losses[-1], per_step * left))
        model.eval()
        valid = _mean_loss(model, [tuple(t.to(device) for t in b) for b in dev]) if dev else None
        record = EpochResult(epoch, sum(losses) / len(losses), valid, time.perf_counter() - t0)
        result.epochs.append(record)
        score = valid if valid is not None else record.train_loss
        if score < best_loss:
            best_loss, result.best_epoch, since_best = score, epoch, 0
            _save_adapter(model, out_dir / "adapter")
        else:
            since_best += 1
        _save_checkpoint(checkpoints / f"epoch-{epoch}", get_peft_model_state_dict(model, save_embedding_layers=False),
                         optimizer,
                         {"epochs": [asdict(e) for e in result.epochs], "best_epoch": result.best_epoch,
                          "best_loss": best_loss})
        if on_epoch:
            on_epoch(record)
    return result


def _save_adapter(model: Any, folder: Path) -> None:
    """The adapter in PEFT format, replaced atomically (a crash mid-save keeps the previous best)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), save_embedding_layers=False)
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _save_checkpoint(folder: Path, adapter_state: dict[str, Any], optimizer: Any, state: dict[str, Any]) -> None:
    import torch

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(adapter_state, tmp / "adapter.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state))   # written last: a checkpoint without it is not one
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


# --- the tuned model as a chat model ------------------------------------------------------------------

_ADAPTED: dict[str, tuple[Any, threading.Lock]] = {}


class LoraChat:
    """The base model with a trained adapter, answering chat requests with the model's chat template."""

    offline = True
    generative = True
    name = "lora"

    def __init__(self, adapter: Path, settings: LoraSettings, model_id: str):
        if not (adapter / "adapter_config.json").is_file():
            raise WorkbenchError(f"no LoRA adapter at {adapter}")
        self.adapter, self.settings, self.model_id = adapter, settings, model_id
        self.label = f"LoRA {model_id} of {base_name(settings)}, local (transformers + peft)"
        self.context_window = None

    def _model(self) -> tuple[Any, Any, threading.Lock]:
        from peft import PeftModel

        base, tokenizer = load_base(self.settings)
        key = str(self.adapter)
        with _BASES_LOCK:
            if key not in _ADAPTED:
                model = PeftModel.from_pretrained(copy.deepcopy(base), str(self.adapter))
                model.eval()
                _ADAPTED[key] = (model, threading.Lock())
        model, lock = _ADAPTED[key]
        return model, tokenizer, lock

    def complete(self, messages: list[dict[str, str]], max_tokens: int = 512, grounding: Any = None, *,
                 schema: dict[str, Any] | None = None, on_token: Callable[[str], None] | None = None) -> Any:
        import torch

        from .protocols import ChatResult

        model, tokenizer, lock = self._model()
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        runtime = LlamaCppSettings()            # the base model's answer cap and stop guard, so the arms match
        limit = min(max_tokens, runtime.max_output_tokens)
        with lock, torch.no_grad():
            started = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=limit, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            seconds = time.perf_counter() - started
        new = out[0, ids["input_ids"].shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        for stop in runtime.stop:
            text = text.split(stop)[0]
        text = text.strip()
        if on_token is not None:
            on_token(text)
        return ChatResult(text, int(ids["input_ids"].shape[1]), int(len(new)), self.model_id,
                          timings={"tokens_per_s": len(new) / seconds if seconds else 0.0})


# --- the fine-tuner backend ---------------------------------------------------------------------------

class LoraFineTuner:
    """LoRA training in the app's process on the job's workspace (`finetune.run_lora`)."""

    name = "lora"
    label = LABEL
    offline = True

    def __init__(self, settings: LoraSettings):
        self.settings = settings

    def launch(self, job: Any) -> Any:
        from .. import finetune

        if job.workspace is None:
            raise WorkbenchError("the LoRA trainer saves its adapter in a workspace: the job needs one")
        hp = {k: v for k, v in job.hyperparameters.items() if k in LoraSettings.model_fields and v is not None}
        return JobStatus.of_saved(finetune.run_lora(job.workspace, self.settings.model_copy(update=hp)))

    def check(self, examples: list[dict[str, Any]], model: str) -> Any:
        from ..training_data import check

        return check(examples, model)

    def chat_model(self, fine_tuned_model: str) -> None:
        return None   # evaluation opens the adapter from the workspace the job saved it in

    def status(self, job_id: str) -> Any:
        raise WorkbenchError(f"{job_id} runs in this process; its state is in the workspace")

    def cancel(self, job_id: str) -> Any:
        raise WorkbenchError(f"{job_id} runs in this process: stop it from the page or with Ctrl-C; it resumes "
                             "from its last checkpoint")


def register(registry: Any) -> None:
    from .registry import Backend

    registry.add(Backend("fine_tuner", "lora", LABEL, True, lambda s, cfg: LoraFineTuner(s), LoraSettings, missing))
