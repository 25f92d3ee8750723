"""Keeping a retiring fine-tuned model's answers as a frozen arm: captured through the real OpenAI client
against the local server, resumed after a stop, and scored in Compare after the model is gone."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from workbench import capture, cli, evaluation, finetune, providers, sample, splits, workspace
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def tuned(openai_server, openai_providers):
    """A workspace with an OpenAI fine-tuned model trained on its train side (the job ran on the local server)."""
    ws = workspace.open_workspace("retiring", create=True)
    sample.ensure_sample(ws)
    splits.make_split(ws)
    tuner = providers.get_fine_tuner()
    job = finetune.start_job(ws, tuner, "gpt-4o-mini-2024-07-18")
    for _ in range(10):
        job = finetune.refresh(ws, job["id"], tuner)
    assert job["state"] == "succeeded"
    return ws, job["fine_tuned_model"]


def _chat_calls(server) -> int:
    return sum(1 for r in server.requests if r["path"] == "/v1/chat/completions")


def test_capture_keeps_every_answer_resumes_and_records_what_the_model_saw(openai_server, tuned):
    ws, model = tuned
    questions = evaluation.default_questions(ws)[:10]
    stops = iter([False] * 4 + [True])
    kept = capture.capture(ws, model, questions=questions, should_stop=lambda: next(stops, True))
    assert (kept.answered, kept.questions, kept.complete) == (4, 10, False)
    assert _chat_calls(openai_server) == 4
    kept = capture.capture(ws, model, questions=questions)           # resumes: only the six missing are asked
    assert (kept.answered, kept.complete) == (10, True) and _chat_calls(openai_server) == 10
    assert kept.label.startswith(f"{model} (answers captured 20")
    asked = [r["json"] for r in openai_server.requests if r["path"] == "/v1/chat/completions"]
    assert {a["model"] for a in asked} == {model}
    assert asked[0]["messages"][-1] == {"role": "user", "content": questions[0].question}
    stored = capture.answers(ws, kept.id)
    assert set(stored) == {q.id for q in questions} and all(a["answer"] for a in stored.values())
    # It came from this workspace's job, so Compare knows what the model was trained on.
    split = splits.saved_split(ws)
    assert kept.trained_on.train_ids == split.train


def test_the_frozen_arm_is_scored_after_the_model_is_gone(openai_server, tuned):
    ws, model = tuned
    questions = evaluation.default_questions(ws)[:12]                 # the test side
    capture.capture(ws, model, questions=questions)
    openai_server.stop()                                             # the model no longer serves
    settings = evaluation.EvalSettings(arms=["frozen"], concurrency=1)
    run_id = evaluation.create_run(ws, questions, settings)
    settings = evaluation.run_settings(ws, run_id)
    assert settings.frozen == capture.capture_id(model)
    done = evaluation.run(ws, run_id, evaluation.build_arms(ws, settings))
    assert len(done["frozen"]) == 12 and all(r.error is None for r in done["frozen"].values())
    summary = evaluation.summarize(ws, run_id)
    assert summary["frozen"]["provider"].startswith(f"{model} (answers captured")
    assert summary["frozen"]["questions"] == 12
    kept = capture.answers(ws, capture.capture_id(model))
    assert [r["answer"] for r in summary["frozen"]["per_question"]] == [kept[q.id]["answer"] for q in questions]


def test_the_frozen_arm_refuses_questions_the_model_was_trained_on(openai_server, tuned):
    ws, model = tuned
    side = splits.sides(ws, splits.saved_split(ws))
    capture.capture(ws, model, questions=side.train[:5])
    with pytest.raises(evaluation.OverlapError, match="5 of 5 evaluation questions overlap what"):
        evaluation.create_run(ws, side.train[:5], evaluation.EvalSettings(arms=["frozen"]))
    # A question it has no captured answer to is a clear per-question error, not a silent blank.
    run_id = evaluation.create_run(ws, side.test[:2], evaluation.EvalSettings(arms=["frozen"], concurrency=1))
    done = evaluation.run(ws, run_id, evaluation.build_arms(ws, evaluation.run_settings(ws, run_id)))
    assert all("has no answer to question" in r.error for r in done["frozen"].values())


def test_capture_from_the_cli_then_compare_with_the_frozen_arm(openai_server, tuned):
    ws, model = tuned
    runner = CliRunner()
    result = runner.invoke(cli.main, ["finetune", "capture", model, "--workspace", "retiring", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)                          # progress goes to stderr
    assert "267/267 answered" in result.stderr
    assert data["model"] == model and data["complete"] and data["answered"] == data["questions"] == 267
    assert data["trained_on"]["train_ids"] == splits.saved_split(ws).train
    with pytest.raises(WorkbenchError, match="no captured answers 'nope'"):
        capture.get_capture(ws, "nope")


def test_capture_on_the_fine_tune_page_then_compare_the_frozen_arm(openai_server, tuned, app_test):
    ws, model = tuned
    at = app_test("retiring").run()
    at.switch_page("pages/finetune.py").run()
    assert at.text_input(key="ft_capture_model").value == model       # the workspace's OpenAI fine-tune
    at.button(key="ft_capture").click().run()
    assert not at.exception
    shown = [s.value.replace("\\", "") for s in at.success]          # as rendered (Markdown escapes removed)
    assert f"Kept 267 answers of {capture.captures(ws)[0].label}." in shown
    at.switch_page("pages/compare.py").run()
    assert "Captured answers (frozen)" in at.multiselect(key="cmp_arms").options
    at.multiselect(key="cmp_arms").set_value(["rag", evaluation.FROZEN]).run()
    assert at.selectbox(key="cmp_frozen").value == capture.capture_id(model)
    at.number_input(key="cmp_limit").set_value(10)
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    run = evaluation.runs(ws)[0]
    summary = evaluation.summarize(ws, run["id"])
    assert summary["frozen"]["questions"] == 10 and summary["frozen"]["first_error"] is None
    shown = " ".join(str(d.value.to_dict()) for d in at.dataframe)
    assert "Captured answers (frozen)" in shown
