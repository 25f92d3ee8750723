"""The Compare page, clicked through with AppTest, and its measured figures on the Estimate page."""
import json
import threading

import pytest

from workbench import evaluation, finetune, sample, splits, workspace
from workbench.providers.local_trainer import Hyperparameters


def test_compare_page_runs_shows_and_sends_to_estimate(app_test, monkeypatch):
    ws = sample.open_sample()
    splits.make_split(ws)
    finetune.run_local(ws, Hyperparameters(epochs=5))
    summaries = []
    summarize = evaluation.summarize
    monkeypatch.setattr(evaluation, "summarize", lambda *a, **k: summaries.append(a[1]) or summarize(*a, **k))
    at = app_test().run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    # The arms being decided between come first, the base model last; the selector has the full width.
    assert at.multiselect(key="cmp_arms").value == ["rag", "ft", "ft_rag", "router", "base"]
    assert not any(c.multiselect for c in at.columns)
    assert next(c for c in at.columns if c.selectbox and c.selectbox[0].key == "cmp_ft").weight == pytest.approx(0.6)
    at.multiselect(key="cmp_arms").set_value(["base", "rag", "ft", "router"]).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["arm"]) == ["Base model (no context)", "RAG", "Fine-tuned", "Router (selective hybrid)"]
    assert table.loc[1, "F1"] > table.loc[2, "F1"]
    assert any("Offline stand-ins and tiny local models in this run" in c.value for c in at.caption)
    assert any(c.value.startswith("Router:") and "where exactly one of" in c.value for c in at.caption)
    assert any("questions in this run" in c.value for c in at.caption)
    # Per question: RAG, then fine-tuned, the router, and the base model's refusals last; answers wrap.
    per_question = at.dataframe[-1]
    assert list(per_question.value.columns) == [
        "question", "gold", "RAG: answer", "RAG: score", "Fine-tuned: answer", "Fine-tuned: score",
        "Router (selective hybrid): answer", "Router (selective hybrid): score", "Base model (no context): answer",
        "Base model (no context): score", "category"]
    assert per_question.proto.row_height > 64          # the grid wraps text in rows taller than 4rem
    columns = json.loads(per_question.proto.columns)
    assert columns["question"]["pinned"] is True
    assert columns["RAG: answer"]["label"] == "RAG" and columns["RAG: score"]["label"] == "score"
    assert columns["RAG: score"]["help"].startswith("The RAG arm's score on the question, 0 to 1: token F1")
    assert all(columns[name].get("width") for name in per_question.value.columns)
    # One summary for the run, however often the page reruns.
    assert summaries == [evaluation.runs(ws)[0]["id"]]
    at.selectbox(key="cmp_filter").set_value("RAG right, fine-tuned wrong").run()
    assert not at.exception
    at.button(key="cmp_to_estimate").click().run()
    assert any("Sent measured latency" in s.value for s in at.success)
    assert len(summaries) == 1
    assert set(evaluation.measured_figures(workspace.open_workspace("sample"))) == {"rag", "fine_tuning",
                                                                                   "hybrid_routing"}
    # A run with new results is summarised again.
    settings = evaluation.EvalSettings(arms=["router"])   # the router takes one question at a time
    ctx = evaluation.build_arms(ws, settings)
    partial = evaluation.create_run(ws, evaluation.default_questions(ws)[:4], settings)
    stop = threading.Event()
    evaluation.run(ws, partial, ctx, lambda arm, done, total, eta: done >= 2 and stop.set(), stop)
    at.run().selectbox(key="cmp_pick").set_value(partial).run()
    assert any(c.value.startswith("2 question(s)") for c in at.caption)
    evaluation.run(ws, partial, ctx)
    at.run()
    assert any(c.value.startswith("4 question(s)") for c in at.caption)
    assert summaries[1:] == [partial, partial]
    at.switch_page("pages/estimate.py").run()
    side = next(d.value for d in at.dataframe if "latency ms p50 (measured)" in d.value.columns)
    assert set(side["option"]) == {"RAG", "Fine-tuning", "Hybrid (routing)"}


def test_compare_page_without_a_model_explains(app_test):
    at = app_test().run()
    at.switch_page("pages/compare.py").run()
    assert any("No fine-tuned model yet" in w.value for w in at.warning)
    at.button(key="cmp_run").click().run()
    assert any("no fine-tuned model yet" in e.value for e in at.error)


def test_compare_page_refuses_questions_the_model_trained_on_and_marks_allowed_runs(app_test):
    ws = sample.open_sample()
    splits.make_split(ws, seed=0)
    finetune.run_local(ws, Hyperparameters(epochs=3))
    splits.make_split(ws, seed=5)          # a new split: part of its test side was the model's training side
    at = app_test().run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_arms").set_value(["rag", "ft"]).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    refusal = next(e.value for e in at.error if "evaluation questions overlap what Local trainer" in e.value)
    assert "Evaluate on questions it never saw" in refusal and not evaluation.runs(ws)
    at.checkbox(key="cmp_allow_overlap").check().run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    run = evaluation.summarize(ws, evaluation.runs(ws)[0]["id"])["run"]
    assert run["contaminated"] and run["overlap"] > 0
    assert any(e.value.startswith(f"Contaminated run: {run['overlap']} of {run['questions']} questions") for e in at.error)


@pytest.mark.local_llm
@pytest.mark.timeout(600)
def test_a_quick_run_with_the_local_llm_measures_its_speed_for_the_estimate(app_test):
    ws = sample.open_sample()
    splits.make_split(ws)
    at = app_test().run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_arms").set_value(["base", "rag"]).run()
    at.number_input(key="cmp_limit").set_value(6).run()
    at.button(key="cmp_run").click().run(timeout=300)   # twelve answers of the local LLM in one script run
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["arm"]) == ["Base model (no context)", "RAG"]
    assert int(table.loc[0, "n (answerable)"]) + int(table.loc[0, "n (unanswerable)"]) == 6
    assert any("6 questions in this run" in c.value for c in at.caption)
    assert any("tiny local models in this run" in c.value and "SmolLM2-135M-Instruct" in c.value for c in at.caption)
    assert not any("different models" in w.value for w in at.warning)       # both arms are the one local model
    assert any(c.value.startswith("RAG, measured on this machine (6 answers)") for c in at.caption)
    at.button(key="cmp_to_estimate").click().run()
    at.switch_page("pages/estimate.py").run()
    at.button(key="est_measured_speeds").click().run()
    assert not at.exception and at.checkbox(key="est:latency_custom").value
    rag = evaluation.measured_figures(ws)["rag"]["model_speed"]
    assert at.number_input(key="est:latency.rag_model.output_tokens_per_s").value == pytest.approx(
        rag["output_tokens_per_s"])
