"""Together AI and Fireworks AI fine-tuning jobs: the real backends (REST over httpx) against the local
test server's copies of their endpoints, with its faults."""
from __future__ import annotations

import json

import pytest

from workbench import cli, finetune, providers, sample, splits, workspace
from workbench.costs import auto_epochs
from workbench.errors import WorkbenchError
from workbench.providers.fireworks import FireworksFineTuner, FireworksSettings
from workbench.providers.together import TogetherFineTuner, TogetherSettings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hosted(hosted_services):
    openai_server = hosted_services
    ws = workspace.open_workspace("hosted", create=True)
    sample.ensure_sample(ws)
    splits.make_split(ws)
    return openai_server, ws


def together(**kw) -> TogetherFineTuner:
    return TogetherFineTuner(TogetherSettings(**{"timeout_s": 2, "max_retries": 2, **kw}))


def fireworks(**kw) -> FireworksFineTuner:
    return FireworksFineTuner(FireworksSettings(**{"timeout_s": 2, "max_retries": 2, "poll_s": 0.01, **kw}))


def _until_done(ws, job_id, tuner, reads=20):
    for _ in range(reads):
        job = finetune.refresh(ws, job_id, tuner)
        if job["state"] in finetune.TERMINAL:
            return job
    raise AssertionError(f"{job_id} still {job['state']} after {reads} reads")


def _posts(server, path):
    return [r for r in server.requests if r["method"] == "POST" and r["path"] == path]


# --- Together -----------------------------------------------------------------------------------

def test_together_lora_job_end_to_end(hosted):
    server, ws = hosted
    tuner = together()
    side = splits.sides(ws, splits.saved_split(ws))
    job = finetune.start_job(ws, tuner, tuner.model_id, {"n_epochs": "auto", "learning_rate": 2e-4,
                                                         "lora_rank": 16}, "support", 7)
    # The job is in the workspace from its first answer on.
    assert finetune.get_job(ws, job["id"])["provider"] == "together" and job["state"] in ("queued", "running")
    uploads = [r for r in server.requests if r["path"] == "/v1/files/upload"]
    assert len(uploads) == 2                      # train and dev; the test side is never uploaded
    body = _posts(server, "/v1/fine-tunes")[0]["json"]
    n_train = len([p for p in side.train if p.answer])
    assert body["n_epochs"] == int(auto_epochs(n_train)) and body["learning_rate"] == 2e-4
    assert body["training_type"] == {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0,
                                     "lora_trainable_modules": "all-linear"}
    assert body["validation_file"] and body["suffix"] == "support" and body["random_seed"] == 7
    stored = server.files[body["training_file"]]["data"].decode()
    assert len(stored.splitlines()) == n_train and all("messages" in json.loads(line) for line in stored.splitlines())

    done = _until_done(ws, job["id"], tuner)
    assert done["state"] == "succeeded" and done["fine_tuned_model"].startswith("test-org/")
    assert [m["step"] for m in done["metrics"]] == [1, 2, 3]
    assert done["metrics"][0]["train_loss"] == 1.4 and done["metrics"][0]["valid_loss"] == pytest.approx(1.59)
    assert any("Training started" in e["message"] for e in done["events"])
    model = next(m for m in finetune.trained_models(ws) if m.kind == "together")
    assert model.label == f"{done['fine_tuned_model']} (Together AI fine-tune)" and not model.offline

    # The tuned model answers through Together's OpenAI-compatible chat endpoint.
    chat = tuner.chat_model(done["fine_tuned_model"])
    reply = chat.complete([{"role": "user", "content": "How long is the trial?"}], max_tokens=20)
    last = server.requests[-1]
    assert last["path"] == "/v1/chat/completions" and last["json"]["model"] == done["fine_tuned_model"]
    assert reply.text and "Together AI fine-tune" in chat.label


def test_a_together_model_is_the_fine_tuned_arm_in_compare(hosted):
    from workbench import evaluation

    server, ws = hosted
    tuner = together()
    job = _until_done(ws, finetune.start_job(ws, tuner, tuner.model_id)["id"], tuner)
    test = splits.sides(ws, splits.saved_split(ws)).test[:3]
    run_id = evaluation.create_run(ws, test, evaluation.EvalSettings(arms=["ft"], concurrency=1))
    settings = evaluation.run_settings(ws, run_id)
    assert settings.ft_model == job["fine_tuned_model"]            # the newest trained model, fixed by id
    done = evaluation.run(ws, run_id, evaluation.build_arms(ws, settings))
    assert all(r.error is None and r.answer for r in done["ft"].values())
    asked = [r["json"]["model"] for r in server.requests if r["path"] == "/v1/chat/completions"]
    assert asked == [job["fine_tuned_model"]] * 3
    summary = evaluation.summarize(ws, run_id)
    assert summary["ft"]["provider"] == f"{job['fine_tuned_model']} (Together AI fine-tune)"
    assert summary["ft"]["unpriced"] == 3          # served by the hour from a deployment: no per-token price


def test_together_job_resumes_after_a_restart_and_cancels(hosted):
    server, ws = hosted
    job = finetune.start_job(ws, together(), "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    # A new process: nothing but the workspace; the job is picked up by its saved id.
    assert [j["id"] for j in finetune.open_jobs(ws)] == [job["id"]]
    fresh = providers.get_fine_tuner(name="together")
    assert finetune.refresh(ws, job["id"], fresh)["state"] in ("queued", "running")
    assert finetune.cancel(ws, job["id"], fresh)["state"] == "cancelling"
    assert finetune.open_jobs(ws)                                       # still followed until it has stopped
    assert finetune.refresh(ws, job["id"], fresh)["state"] == "cancelled"
    assert not finetune.open_jobs(ws)
    with pytest.raises(WorkbenchError, match="already cancelled"):
        finetune.cancel(ws, job["id"], fresh)


def test_together_failed_job_says_why(hosted):
    server, ws = hosted
    server.fail_next_job("the training file has an example of 40000 tokens")
    tuner = together()
    job = _until_done(ws, finetune.start_job(ws, tuner, tuner.model_id)["id"], tuner)
    assert job["state"] == "failed" and job["error"] == "the training file has an example of 40000 tokens"


def test_together_faults_are_bounded_and_clear(hosted):
    server, ws = hosted
    tuner = together()
    # 429 twice on create: refused before anything was made, so it is retried and the job is created once.
    server.inject({"status": 429, "retry_after": 0}, times=2, path="/fine-tunes")
    job = finetune.start_job(ws, tuner, tuner.model_id)
    assert len(_posts(server, "/v1/fine-tunes")) == 3 and len(server.together_jobs) == 1
    # 500 on create is not retried: the job may exist, and a second would be billed.
    server.requests.clear()
    server.inject(500, times=1, path="/fine-tunes")
    with pytest.raises(WorkbenchError, match=r"Together AI failed \(500\) while creating the fine-tuning job"):
        finetune.start_job(ws, tuner, tuner.model_id)
    assert len(_posts(server, "/v1/fine-tunes")) == 1
    # Reads are retried up to max_retries, then give up with the deadline named.
    server.inject({"type": "timeout", "delay": 3}, times=3, path=f"/fine-tunes/{job['id']}")
    with pytest.raises(WorkbenchError, match=r"did not answer in time \(2 s\) while reading the job status; "
                                             "retried and gave up"):
        tuner.status(job["id"])
    # A body that trickles in never holds the call past its deadline.
    server.inject({"type": "trickle", "interval": 0.5, "pad": 200}, times=3, path=f"/fine-tunes/{job['id']}")
    with pytest.raises(WorkbenchError, match="did not answer in time"):
        tuner.status(job["id"])
    server.inject("malformed", times=1, path=f"/fine-tunes/{job['id']}")
    with pytest.raises(WorkbenchError, match="not JSON while reading the job status"):
        tuner.status(job["id"])
    server.inject("wrong_shape", times=1, path="/fine-tunes")
    with pytest.raises(WorkbenchError, match="answered without 'id' while creating the fine-tuning job"):
        finetune.start_job(ws, tuner, tuner.model_id)
    # The job saved before the faults is intact and still resumes.
    assert _until_done(ws, job["id"], tuner)["state"] == "succeeded"


def test_together_key_problems_never_show_the_key(hosted, monkeypatch):
    server, ws = hosted
    monkeypatch.setenv("TOGETHER_API_KEY", "tgp_v1_wrongkey0123456789abcdef")
    with pytest.raises(WorkbenchError) as err:
        together().status("ft-nope")
    assert "refused the API key (401)" in str(err.value) and "TOGETHER_API_KEY" in str(err.value)
    monkeypatch.setenv("TOGETHER_API_KEY", server.api_key + "-0123456789abcdef")
    server.api_key = server.api_key + "-0123456789abcdef"
    server.inject({"type": "echo_auth", "status": 400}, path="/fine-tunes")
    with pytest.raises(WorkbenchError) as err:
        together().status("ft-x")
    assert server.api_key not in str(err.value) and "[redacted]" in str(err.value)
    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(WorkbenchError, match="set the environment variable TOGETHER_API_KEY"):
        together(base_url="https://api.together.ai/v1").status("ft-x")


# --- Fireworks ----------------------------------------------------------------------------------

def test_fireworks_lora_job_end_to_end(hosted):
    server, ws = hosted
    tuner = fireworks()
    job = finetune.start_job(ws, tuner, tuner.model_id, {"n_epochs": 2, "lora_rank": 16, "batch_size": 4},
                             "Support")
    assert finetune.get_job(ws, job["id"])["provider"] == "fireworks"
    datasets = _posts(server, "/v1/accounts/test-acct/datasets")
    assert [d["json"]["datasetId"].rsplit("-", 1)[-1] for d in datasets] == ["train", "dev"]
    assert all(d["json"]["dataset"]["format"] == "CHAT" for d in datasets)
    created = next(r for r in server.requests if r["path"].endswith("/supervisedFineTuningJobs"))
    assert created["query"]["supervisedFineTuningJobId"] == job["id"]
    body = created["json"]
    assert body["epochs"] == 2 and body["loraRank"] == 16 and body["batchSizeSamples"] == 4
    assert body["dataset"].endswith("-train") and body["evaluationDataset"].endswith("-dev")
    assert body["outputModel"].startswith("accounts/test-acct/models/support-")
    done = _until_done(ws, job["id"], tuner)
    assert done["state"] == "succeeded" and done["fine_tuned_model"] == body["outputModel"]
    assert done["events"][-1]["message"] == "state completed (percent 100, epoch 2)"
    chat = tuner.chat_model(done["fine_tuned_model"])
    assert chat.complete([{"role": "user", "content": "hello"}], max_tokens=10).text
    assert server.requests[-1]["path"] == "/inference/v1/chat/completions"


def test_fireworks_cancel_uses_the_verb_or_falls_back_to_delete(hosted):
    server, ws = hosted
    tuner = fireworks()
    job = finetune.start_job(ws, tuner, tuner.model_id)
    assert finetune.cancel(ws, job["id"], tuner)["state"] == "cancelled"   # cancelling, read once more: cancelled
    server.fireworks_cancel_verb = False
    job = finetune.start_job(ws, tuner, tuner.model_id)
    finetune.cancel(ws, job["id"], tuner)
    assert [r["method"] for r in server.requests if r["path"].endswith(job["id"])][-1] == "DELETE"
    assert finetune.get_job(ws, job["id"])["state"] == "cancelled"


def test_fireworks_failures_and_retried_create(hosted, monkeypatch):
    server, ws = hosted
    tuner = fireworks()
    server.fail_next_job("dataset has fewer than 3 examples")
    job = _until_done(ws, finetune.start_job(ws, tuner, tuner.model_id)["id"], tuner)
    assert job["state"] == "failed" and job["error"] == "dataset has fewer than 3 examples"
    # A create whose first answer is lost: the retry meets its own job (409) and goes on with it.
    server.inject({"type": "timeout", "delay": 3}, times=1, path="/accounts/test-acct/supervisedFineTuningJobs")
    job = finetune.start_job(ws, tuner, tuner.model_id)
    assert job["id"] in server.fireworks_jobs and len(server.fireworks_jobs) == 2
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID")
    with pytest.raises(WorkbenchError, match="FIREWORKS_ACCOUNT_ID"):
        fireworks().status(job["id"])
    with pytest.raises(WorkbenchError, match=r"Fireworks AI denied access \(403\).*no access to account 'other'"):
        fireworks(account_id="other").status(job["id"])


# --- through the CLI, and nothing secret kept -------------------------------------------------------

def test_cli_runs_and_lists_hosted_jobs_without_writing_the_key(hosted):
    from click.testing import CliRunner

    server, ws = hosted
    runner = CliRunner()
    for provider in ("together", "fireworks"):
        result = runner.invoke(cli.main, ["finetune", "run", "--provider", provider, "--epochs", "2",
                                          "--lora-rank", "4", "--workspace", "hosted"])
        assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(cli.main, ["finetune", "status", "--workspace", "hosted", "--json"]).output)
    assert {j["provider"] for j in listed} == {"together", "fireworks"}
    assert {j["base_model"] for j in listed} == {TogetherSettings().model, FireworksSettings().model}
    for j in listed * 7:   # each read of a running job asks the provider again
        result = runner.invoke(cli.main, ["finetune", "status", j["id"], "--workspace", "hosted", "--json"])
        assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(cli.main, ["finetune", "status", "--workspace", "hosted", "--json"]).output)
    assert all(set(j) >= {"provider", "state", "base_model", "fine_tuned_model", "metrics"} for j in listed)
    assert {j["state"] for j in listed} == {"succeeded"}
    together_job = next(j for j in listed if j["provider"] == "together")
    assert [m["train_loss"] for m in together_job["metrics"]] == [1.4, 0.98, 0.686]
    for path in ws.path.rglob("*"):
        if path.is_file():
            assert server.api_key.encode() not in path.read_bytes(), path
