"""Cost preview, the local trainer learning, and OpenAI fine-tuning jobs against the local test server."""
import datetime as dt
import json

import numpy as np
import pytest

from workbench import corpus, finetune, providers, sample, splits, workspace
from workbench.errors import WorkbenchError
from workbench.parsing import QAPair
from workbench.providers.local_embedder import LocalEmbedder
from workbench.providers.local_trainer import Hyperparameters, LocalModel, train


def test_cost_preview_worked_by_hand():
    # 20 examples of 400 tokens: auto epochs = min(25, floor(100 / 20)) = 5; 20 x 400 x 5 = 40,000 tokens x $3/1M.
    p = finetune.preview([400] * 20, "gpt-4o-mini-2024-07-18", today=dt.date(2026, 11, 29))
    assert (p.epochs, p.billed_tokens) == (5, 40_000)
    assert p.training_cost_usd == pytest.approx(0.12)
    messages = [c.message for c in p.cautions]
    assert any("No new fine-tuning jobs" in m and "2027-01-06" in m for m in messages)
    assert any("stop serving on 2027-01-14" in m for m in messages)
    assert any("50 to 100 is the recommended minimum" in m for m in messages)
    # Chosen epochs, an example over the 65,536-token limit billed at the limit, gpt-4.1 at $25/1M.
    p = finetune.preview([70_000] + [100] * 59, "gpt-4.1", epochs=2, today=dt.date(2026, 11, 29))
    assert p.billed_tokens == (65_536 + 59 * 100) * 2
    assert p.training_cost_usd == pytest.approx(p.billed_tokens * 25 / 1e6)
    after = finetune.preview([100] * 60, "gpt-4o-mini", today=dt.date(2027, 2, 1))
    assert any(c.level == "error" and "closed to new jobs" in c.message for c in after.cautions)


def test_cost_preview_of_hosted_and_local_lora_worked_by_hand():
    # Fireworks 8B: 60 examples x 100 tokens x 3 epochs = 18,000 tokens x $0.50/1M = $0.009; nothing retires.
    p = finetune.preview([100] * 60, "fireworks-llama-3.1-8b-lora", today=dt.date(2026, 12, 1))
    assert p.billed_tokens == 18_000 and p.training_cost_usd == pytest.approx(0.009) and not p.cautions
    # The local LoRA: 166 examples x 45 tokens x 3 = 22,410 tokens at 187 tokens/s = 120 s on this machine, $0.
    p = finetune.preview([45] * 166, "smollm2-135m-lora-local", 3, today=dt.date(2026, 12, 1))
    assert p.training_cost_usd == 0 and p.price_note == "about 2 minutes on this machine at 187 training tokens/s"


def test_cost_preview_of_the_self_hosted_option():
    # 100 examples x 1,000 tokens x 3 epochs = 300,000 tokens at 2,000 tokens/s = 150 s of a $0.80/h GPU.
    p = finetune.preview([1000] * 100, "llama-3.1-8b-lora-l4")
    assert p.training_cost_usd == pytest.approx(150 / 3600 * 0.80)
    assert not p.cautions


@pytest.fixture(scope="module")
def sample_pairs(tmp_path_factory):
    ws = workspace.open_workspace("sample", home=tmp_path_factory.mktemp("h"), create=True)
    sample.ensure_sample(ws)
    return ws, corpus.qa_pairs(ws), LocalEmbedder()


def test_local_trainer_learns_and_generalises_to_paraphrases(sample_pairs):
    ws, pairs, embedder = sample_pairs
    answered = [p for p in pairs if p.answer]
    groups = {}
    for p in answered:
        groups.setdefault(p.group, []).append(p)
    held_out = [g[-1] for g in groups.values() if len(g) > 1]       # one paraphrase of each group
    held_ids = {p.id for p in held_out}
    trained = [(p.question, p.answer) for p in answered if p.id not in held_ids]
    split = splits.split_pairs(answered, 0.2, seed=1)
    valid = [(p.question, p.answer) for p in answered if p.id in set(split.dev)]
    model, result = train(trained, valid, embedder.embed, Hyperparameters(epochs=40, seed=0))
    losses = [m.valid_loss for m in result.metrics]
    assert losses[result.best_epoch - 1] < losses[0] - 0.5          # dev loss falls
    assert result.metrics[-1].train_loss < result.metrics[0].train_loss
    predicted = model.answer(embedder.embed([p.question for p in held_out]))
    accuracy = np.mean([a == p.answer for (a, _), p in zip(predicted, held_out)])
    chance = 1 / result.answers
    print(f"\nheld-out paraphrases: accuracy {accuracy:.2f} over {len(held_out)} questions; chance {chance:.4f}")
    assert accuracy >= 20 * chance and accuracy >= 0.2
    again = LocalModel.from_bytes(model.to_bytes())
    assert again.answer(embedder.embed([held_out[0].question])) == model.answer(embedder.embed([held_out[0].question]))


def test_run_local_saves_the_job_and_the_model(sample_pairs):
    ws, _, embedder = sample_pairs
    with pytest.raises(WorkbenchError, match="make the train/dev/test split first"):
        finetune.run_local(ws)
    splits.make_split(ws, 0.2, 0)
    seen = []
    job = finetune.run_local(ws, Hyperparameters(epochs=6), embed=embedder.embed, on_epoch=seen.append)
    assert job["state"] == "succeeded" and len(job["metrics"]) == len(seen) >= 1
    assert job["metrics"][0]["valid_loss"] is not None
    model = finetune.load_local_model(ws, job["id"])
    answer, confidence = model.answer(embedder.embed(["Do I need a credit card for the trial?"]))[0]
    assert answer and 0 < confidence <= 1
    assert any(m.kind == "local" and "offline stand-in" in m.label for m in finetune.trained_models(ws))
    # It learned from the train side and early-stopped on dev; the record says so, and never names a test pair.
    split = splits.saved_split(ws)
    record = next(m.trained_on for m in finetune.trained_models(ws) if m.id == job["id"])
    assert record.train_ids == split.train and record.dev_ids == split.dev and split.dev
    assert not set(split.test) & {p.id for p in record.pairs}


# --- OpenAI fine-tuning jobs against the local server -----------------------------------------------

@pytest.fixture
def prepared(openai_server, openai_providers):
    ws = workspace.open_workspace("ft", create=True)
    sample.ensure_sample(ws)
    splits.make_split(ws)
    return ws, providers.get_fine_tuner()


def test_openai_job_end_to_end(openai_server, prepared):
    ws, tuner = prepared
    job = finetune.start_job(ws, tuner, "gpt-4o-mini-2024-07-18", {"n_epochs": 3, "batch_size": "auto"},
                                suffix="support", seed=7)
    assert job["provider"] == "openai" and job["state"] in ("validating_files", "queued", "running")
    uploaded = [r for r in openai_server.requests if r["path"] == "/v1/files" and r["method"] == "POST"]
    assert len(uploaded) == 2  # the training file, and the dev side as the validation file (never the test side)
    created = next(r["json"] for r in openai_server.requests if r["path"] == "/v1/fine_tuning/jobs")
    assert created["model"] == "gpt-4o-mini-2024-07-18" and created["suffix"] == "support" and created["seed"] == 7
    assert created["method"]["supervised"]["hyperparameters"] == {"n_epochs": 3}
    stored = openai_server.files[job["training_file"]]["data"].decode().splitlines()
    side = splits.sides(ws, splits.saved_split(ws))
    assert len(stored) == sum(1 for p in side.train if p.answer)
    validation = openai_server.files[job["validation_file"]]["data"].decode().splitlines()
    assert {json.loads(line)["messages"][-2]["content"] for line in validation} == \
        {p.question for p in side.dev if p.answer}
    assert json.loads(stored[0])["messages"][-1]["role"] == "assistant"
    for _ in range(10):
        job = finetune.refresh(ws, job["id"], tuner)
        if job["state"] == "succeeded":
            break
    assert job["state"] == "succeeded" and job["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18")
    assert job["events"] and job["metrics"]
    losses = [m["train_loss"] for m in job["metrics"]]
    assert losses == sorted(losses, reverse=True)
    assert any(m.kind == "openai" and m.id == job["fine_tuned_model"] for m in finetune.trained_models(ws))


def test_resume_after_a_restart_and_cancel(openai_server, prepared):
    ws, tuner = prepared
    job = finetune.start_job(ws, tuner, "gpt-4o-mini-2024-07-18")
    # A new process: nothing in memory, only the workspace on disk.
    reopened = workspace.open_workspace("ft")
    pending = finetune.open_jobs(reopened)
    assert [j["id"] for j in pending] == [job["id"]]
    fresh = providers.get_fine_tuner()
    resumed = finetune.refresh(reopened, job["id"], fresh)
    assert resumed["state"] in ("queued", "running")
    cancelled = finetune.cancel(reopened, job["id"], fresh)
    assert cancelled["state"] == "cancelled" and not finetune.open_jobs(reopened)
    with pytest.raises(WorkbenchError, match="already cancelled"):
        finetune.cancel(reopened, job["id"], fresh)


def test_provider_faults_while_training(openai_server, prepared):
    ws, tuner = prepared
    openai_server.inject({"status": 429, "retry_after": 0}, times=1, path="/v1/fine_tuning/jobs")
    job = finetune.start_job(ws, tuner, "gpt-4o-mini-2024-07-18")  # retried once, then created
    assert job["id"].startswith("ftjob-")
    openai_server.inject({"status": 500}, times=10, path="/v1/fine_tuning/jobs")
    with pytest.raises(WorkbenchError, match="failed \\(500\\) while reading the job status"):
        finetune.refresh(ws, job["id"], tuner)
    assert finetune.get_job(ws, job["id"])["state"] != "failed"  # a provider outage does not lose the job
    openai_server.clear_faults()
    openai_server.inject({"status": 400}, times=1, path="/v1/fine_tuning/jobs")
    with pytest.raises(WorkbenchError, match="rejected the request \\(400\\) while creating the fine-tuning job"):
        finetune.start_job(ws, tuner, "gpt-4o-mini-2024-07-18")


def test_wrong_key_while_uploading(openai_server, prepared, monkeypatch):
    ws, _ = prepared
    monkeypatch.setenv("WB_TEST_KEY", "sk-wrong-key-123456789")
    with pytest.raises(WorkbenchError) as err:
        finetune.start_job(ws, providers.get_fine_tuner(), "gpt-4o-mini-2024-07-18")
    assert "refused the API key (401) while uploading the training file" in str(err.value)
    assert "sk-wrong" not in str(err.value)
    assert finetune.jobs(ws) == []


def test_bring_your_own_model():
    ws = workspace.open_workspace("byo", create=True)
    finetune.register_model(ws, "support-lora", "http://localhost:8000/v1", "support-lora", context_window=8192)
    models = finetune.trained_models(ws)
    assert [(m.kind, m.id, m.base_url, m.context_window) for m in models] == [
        ("openai-compatible", "support-lora", "http://localhost:8000/v1", 8192)]
    assert models[0].trained_on.pairs == []       # nothing in the workspace it could have seen
    with pytest.raises(WorkbenchError, match="base_url must start with http"):
        finetune.register_model(ws, "x", "localhost:8000", "m")
    seen = [QAPair("What is the refund window?", "30 days", id="r1", source="mine.jsonl")]
    model = finetune.register_model(ws, "other", "http://localhost:8001/v1", "other", trained_on=seen)
    assert [p.id for p in model.trained_on.pairs] == ["r1"] and "training file" in model.trained_on.note


def test_the_local_trainer_launched_through_the_fine_tuner_protocol_reports_its_saved_job():
    from workbench.providers import JobRequest, JobStatus

    ws = sample.open_sample()
    splits.make_split(ws)
    tuner = providers.get_fine_tuner(name="local")
    status = tuner.launch(JobRequest("local", [], [], {"epochs": 3}, workspace=ws))
    saved = finetune.get_job(ws, status.id)
    assert isinstance(status, JobStatus) and status.state == saved["state"] == "succeeded"
    assert status.fine_tuned_model == status.id and len(status.metrics) == len(saved["metrics"]) == 3
    assert [e.message for e in status.events] == [e["message"] for e in saved["events"]]
