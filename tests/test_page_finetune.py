"""The Fine-tune page, clicked through with AppTest on the sample workspace."""
import json

import pytest

from workbench import finetune, splits, workspace
from workbench.safe_text import escape_markdown


def open_page(app_test):
    at = app_test().run()
    at.switch_page("pages/finetune.py").run()
    assert not at.exception
    return at


def test_checks_split_train_and_watch(app_test):
    at = open_page(app_test)
    checks = at.dataframe[0].value
    assert {"severity", "check", "finding", "rows"} <= set(checks.columns)
    assert "contradictory_answers" in set(checks["check"])  # the versioned questions in the sample
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Epochs"] == "3" and metrics["Training cost"].startswith("$")
    assert any("No new fine-tuning jobs" in w.value for w in at.warning)
    assert at.button(key="ft_train_local").disabled  # no split yet
    at.button(key="ft_split").click().run()
    split = splits.saved_split(workspace.open_workspace("sample"))
    assert split and any("pairs to train on" in c.value for c in at.caption)
    at.number_input(key="ft_local_epochs").set_value(5)
    at.button(key="ft_train_local").click().run()
    assert not at.exception
    assert any(s.value.startswith("Trained local-") for s in at.success)
    jobs = finetune.jobs(workspace.open_workspace("sample"))
    assert len(jobs) == 1 and jobs[0]["state"] == "succeeded"
    board = next(d.value for d in at.dataframe if "job" in d.value.columns)
    assert board.iloc[0]["state"] == "succeeded" and "offline stand-in" in board.iloc[0]["provider"]
    models = next(d.value for d in at.dataframe if "trained on" in d.value.columns)
    assert models.iloc[0]["trained on"] == f"{len(split.train)} train + {len(split.dev)} dev"
    at.number_input(key="ft_seed").set_value(4)
    at.button(key="ft_split").click().run()             # re-splitting with a model trained
    assert any("1 trained model(s) exist. Compare checks each of them against the new split" in w.value
               for w in at.warning)


def test_export_buttons_and_byo_form(app_test):
    at = open_page(app_test)
    labels = [b.label for b in at.get("download_button")]
    assert {"openai (.jsonl)", "alpaca (.json)", "sharegpt (.json)", "csv (.csv)"} <= set(labels)
    form = [t for t in at.text_input if t.label in ("Name", "base_url", "Model")]
    form[0].set_value("support-lora")
    form[1].set_value("localhost:8000/v1")
    form[2].set_value("support-lora")
    next(b for b in at.button if b.label == "Register").click().run()
    assert any("base_url must start with http" in e.value for e in at.error)


def test_launching_an_openai_job_from_the_page(app_test, openai_server, openai_providers):
    at = open_page(app_test)
    at.button(key="ft_split").click().run()
    at.radio(key="ft_provider").set_value("openai").run()
    at.button(key="ft_launch").click().run()
    assert not at.exception
    assert any(s.value.startswith("Job ftjob-") for s in at.success)
    assert finetune.jobs(workspace.open_workspace("sample"))[0]["provider"] == "openai"


def test_launching_a_together_job_from_the_page_and_following_it(app_test, hosted_services):
    at = open_page(app_test)
    at.button(key="ft_split").click().run()
    at.radio(key="ft_provider").set_value("together").run()
    assert "TOGETHER_API_KEY" in " ".join(c.value for c in at.caption)
    at.selectbox(key="ft_together_rank").set_value(16).run()
    at.button(key="ft_launch_together").click().run()
    assert not at.exception
    assert any(s.value.startswith("Job ft-") and "created on Together AI" in s.value for s in at.success)
    job = finetune.jobs(workspace.open_workspace("sample"))[0]
    assert job["provider"] == "together" and job["hyperparameters"]["lora_rank"] == 16
    assert hosted_services.together_jobs[job["id"]]["training_type"]["lora_r"] == 16


@pytest.mark.timeout(900)
def test_training_a_lora_from_the_page_then_resuming_a_stopped_run(app_test):
    pytest.importorskip("peft", reason='the lora extra: pip install -e ".[lora]"')
    from workbench import corpus

    ws = workspace.open_workspace("lora-page", create=True)
    facts = [{"question": f"What is the code name of release {n}?", "answer": f"Release {n} is called R{n * 7}."}
             for n in range(1, 31)]
    corpus.ingest(ws, [("facts.jsonl", "\n".join(json.dumps(f) for f in facts).encode())], kind="qa")
    splits.make_split(ws)
    at = app_test("lora-page").run()
    at.switch_page("pages/finetune.py").run()
    at.radio(key="ft_provider").set_value("lora").run()
    assert at.button(key="ft_resume_lora").disabled                    # nothing stopped yet
    at.number_input(key="ft_lora_epochs").set_value(1)
    at.number_input(key="ft_lora_max").set_value(64)
    at.button(key="ft_train_lora").click().run()
    assert not at.exception
    assert any(s.value.startswith("Trained lora-") and "best epoch 1" in s.value for s in at.success)
    board = next(d.value for d in at.dataframe if "job" in d.value.columns)
    assert board.iloc[0]["provider"] == "lora" and board.iloc[0]["state"] == "succeeded"
    # A run stopped part way (as the page's Stop button does) is offered for resuming.
    job = finetune.get_job(ws, board.iloc[0]["job"])
    job.update(state="cancelled", fine_tuned_model=None)
    finetune._save_job(ws, job)
    at.run()
    assert not at.button(key="ft_resume_lora").disabled and at.button(key="ft_resume_lora").label == f"Resume {job['id']}"
    at.button(key="ft_resume_lora").click().run()
    assert any("resumed after epoch 1" in s.value for s in at.success)
    assert finetune.get_job(ws, job["id"])["state"] == "succeeded"


def test_training_shows_one_loss_chart_by_epoch_and_the_trained_model_answers_on_the_page(app_test):
    at = open_page(app_test)
    ws = workspace.open_workspace("sample")
    examples = finetune.check_workspace(ws).examples
    assert any(c.value.startswith(f"{examples} chat examples from all pairs (no split yet);") for c in at.caption)
    stats = next(d for d in at.dataframe if "measure" in d.value.columns)
    assert list(stats.value.columns) == ["measure", "median", "p90", "max"]      # what fits beside the histogram
    widths = [c["width"] for c in json.loads(stats.proto.columns).values() if "width" in c]
    assert len(widths) == 4 and sum(widths) <= 350
    at.button(key="ft_split").click().run()
    at.number_input(key="ft_local_epochs").set_value(3)
    at.button(key="ft_train_local").click().run()
    assert not at.exception
    loss = [f for f in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
            if f["layout"]["title"]["text"].startswith("Loss")]
    assert len(loss) == 1                                   # the live chart gives way to the job board's
    assert loss[0]["layout"]["title"]["text"] == "Loss by epoch" and loss[0]["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert loss[0]["data"][0]["x"] == [1, 2, 3] and loss[0]["data"][0]["hovertemplate"].startswith("epoch %{x}:")
    side = splits.sides(ws, splits.saved_split(ws))
    assert "offline stand-in, not an LLM" in " ".join(c.value for c in at.caption)
    question = next(p for p in side.test if p.answer).question
    at.text_input(key="ft_ask_question").set_value(question)
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception
    shown = [m.value for m in at.markdown]
    answer = shown[shown.index(f"**{escape_markdown(question)}**") + 1]
    assert answer in {escape_markdown(p.answer) for p in side.train}    # the stand-in knows only its training answers
    assert answer == escape_markdown(finetune.ask(ws, question).answer)  # as Compare's fine-tuned arm answers
    assert any(c.value.startswith("Answered by Local trainer (offline stand-in for a fine-tuned LLM), trained ")
               and "free (on this machine)" in c.value for c in at.caption)
