"""The decision memo, the notebook export, and what must never leak into them."""
import json
import re

import pytest

from workbench import corpus, decision, evaluation, finetune, notebook, pricing, report, sample, splits, workspace
from workbench.providers.local_trainer import Hyperparameters

SCRIPT = "<script>alert('pwned')</script>"


@pytest.fixture(scope="module")
def worked(tmp_path_factory):
    """A workspace that went through every step: answers, a scenario, a trained model, a comparison."""
    home = tmp_path_factory.mktemp("home")
    ws = workspace.open_workspace("memo", home=home, create=True)
    sample.ensure_sample(ws)
    cfg = decision.load_decision_config()
    answers = dict(cfg.preset("support_bot").answers)
    decision.save_decision(ws, answers, decision.recommend(cfg, answers))
    pricing.save_custom_price(ws, "models", {"id": f"evil{SCRIPT}", "input": 1, "output": 1,
                                             "source": f"contract {SCRIPT}", "as_of": "2026-11-01"})
    splits.make_split(ws)
    finetune.run_local(ws, Hyperparameters(epochs=5))
    settings = evaluation.EvalSettings(arms=["rag", "ft"])
    ctx = evaluation.build_arms(ws, settings)
    run_id = evaluation.create_run(ws, evaluation.default_questions(ws)[:12], settings)
    evaluation.run(ws, run_id, ctx)
    evaluation.save_measured(ws, evaluation.summarize(ws, run_id, ctx.embedder))
    return ws, home


def test_markdown_memo_has_every_section(worked):
    ws, _ = worked
    d = report.build(ws)
    md = report.to_markdown(d)
    for heading in ("## The question", "## Recommendation", "## Cost and latency estimate", "## Measured comparison",
                    "Estimate and measurement", "## Risks", "## Price sources"):
        assert heading in md, heading
    assert "**RAG**" in md and "What drove it" in md
    assert "| RAG | " in md and "12 test questions" in md
    assert "No new fine-tuning jobs" not in md                   # the default fine-tuning outlives the horizon
    assert "| model | fireworks-llama-3.1-8b-lora | fireworks.ai/pricing (stored copy, undated)" in md
    assert "(**not confirmed**: fireworks.ai/pricing as stored here is undated" in md
    assert "| model | gpt-4o-mini | OpenAI API pricing page" in md and "| 2026-11-01 |" in md
    assert SCRIPT not in md                                      # user text is escaped in Markdown too


def test_memo_leads_with_one_verdict_in_words(worked):
    ws, _ = worked
    d = report.build(ws)
    md = report.to_markdown(d)
    assert md.index("## Verdict: RAG") < md.index("## The question")
    assert "| Fit | RAG | Decide recommends RAG (clear, 10.5 points ahead of" in md
    assert "| Cost and latency | RAG | Over 12 months at 100,000 queries a month, RAG costs" in md
    assert "| Measured quality | RAG (indicative only) | On 12 test questions no model was trained or tuned on" in md
    assert "Where they agree:" in md and "What would change the verdict:" in md
    # the stand-ins are named, and their latencies are not set against the hosted estimate
    assert "Extractive answerer (offline stand-in, not an LLM)" in md.split("## The question")[0]
    assert not any("differs from the estimate" in r for r in d.risks)
    assert "Latencies measured in Compare are not set against the estimate" in md
    # answers in the questionnaire's order, labels not ids; break-even as a sentence
    cfg = decision.load_decision_config()
    asked = [q.text for q in cfg.questions if q.id in decision.saved_answers(ws)]
    assert [a["question"] for a in d.answers] == asked
    assert "knowledge_freshness" not in md.split("Where the figures came from")[0]
    assert "would cost less than RAG over 12 months above" in md and "month None" not in md
    page = report.to_html(d)
    assert page.index("Verdict: RAG") < page.index("<h2>The question</h2>") and "Points to <b>RAG</b>" in page


def test_report_page_shows_the_verdict(worked, app_test, monkeypatch):
    _, home = worked
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    at = app_test("memo").run()
    at.switch_page("pages/report.py").run()
    assert not at.exception
    assert [s.value for s in at.subheader][:1] == ["RAG"]
    shown = " ".join(m.value for m in at.markdown)
    for part in ("**Fit** · points to **RAG**", "**Cost and latency** · points to **RAG**",
                 "**Measured quality** · points to **RAG (indicative only)**", "What would change the verdict"):
        assert part in shown, part
    assert any("offline stand-ins" in i.value for i in at.info)
    at.run()                                                     # a rerun reads the cached memo
    assert not at.exception and [s.value for s in at.subheader][:1] == ["RAG"]


def test_html_memo_is_self_contained_and_escapes_user_text(worked):
    ws, _ = worked
    page = report.to_html(report.build(ws))
    assert page.startswith("<!doctype html>") and page.count("Plotly.newPlot") >= 4
    assert not re.search(r"<script[^>]+src=", page)             # no external script: plotly is inlined
    assert SCRIPT not in page and "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in page


def test_report_cli(worked, tmp_path, monkeypatch):
    ws, home = worked
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    from click.testing import CliRunner
    from workbench.cli import main

    out = tmp_path / "memo.html"
    result = CliRunner().invoke(main, ["report", "--workspace", "memo", "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!doctype html>")
    assert result.output.startswith("Verdict: RAG\nRAG: the fit is clear.")
    for line in ("Fit: points to RAG", "Cost and latency: points to RAG",
                 "Measured quality: points to RAG (indicative only)", "What would change the verdict:"):
        assert line in result.output, line
    shown = CliRunner().invoke(main, ["report", "--workspace", "memo", "--json"])
    assert json.loads(shown.output)["option"] == "rag"
    md = tmp_path / "memo.md"
    CliRunner().invoke(main, ["report", "--workspace", "memo", "--format", "md", "--out", str(md)])
    assert md.read_text().startswith("# Decision memo")


def test_exported_notebook_reproduces_the_figures(worked, monkeypatch):
    ws, home = worked
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    nb = json.loads(notebook.to_json(ws))
    assert nb["nbformat"] == 4 and [c["cell_type"] for c in nb["cells"]].count("code") >= 7
    namespace: dict = {}
    for source in notebook.code_cells(nb):
        exec(compile(source, "<notebook cell>", "exec"), namespace)
    figures = namespace["FIGURES"]
    assert figures["recommendation"] == decision.saved_result(ws)["recommendation"] == "rag"
    est = report.build(ws).estimate  # the same scenario and prices, read by the report
    assert figures["total_cost_usd"] == {o: e.total_cost_usd for o, e in est.options.items()}
    run_id = evaluation.runs(ws)[0]["id"]
    summary = evaluation.summarize(ws, run_id)
    assert figures["f1"] == {arm: summary[arm]["metrics"]["f1"] for arm in ("rag", "ft")}
    assert figures["documents"] == len(corpus.documents(ws)) and figures["pairs"] == len(corpus.qa_pairs(ws))
