"""The Decide page, clicked through with AppTest."""
import json
import re

import yaml

from workbench import decision, workspace
from workbench.safe_text import escape_markdown


def _subheaders(at):
    return [s.value for s in at.subheader]


def _metrics(at):
    """The figures in the result card's summary line, e.g. Confidence **clear** · margin **7.5** points."""
    line = next(m.value for m in at.markdown if m.value.startswith("Confidence **"))
    confidence, margin, answered = re.findall(r"\*\*(.+?)\*\*", line)
    return {"Confidence": confidence, "Margin (points)": margin, "Answered": answered}


def _download_rows(at):
    """The blocks holding the download buttons, found by walking the page's element tree."""
    found = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "type", "") == "download_button":
                found.append(node)
            walk(child)
    walk(at.main)
    return found


def test_a_fresh_workspace_says_how_to_start_and_shows_no_result_yet(app_test):
    at = app_test().run()
    assert not at.exception
    assert _subheaders(at) == ["Start here"]
    assert any("**Start from a preset**" in m.value and "answer the first questions" in m.value for m in at.markdown)
    # No confidence, drivers, flips or downloads before an answer.
    shown = [m.value for m in at.markdown]
    assert not [v for v in shown if v.startswith(("Confidence", "#### What drove it", "#### What would flip it"))]
    assert not at.dataframe and not at.get("download_button")
    # The first group is open, the others are one click away, and every question is there.
    groups = list(at.main.expander)
    assert [g.label for g in groups] == [
        "**The task** · 0/3 answered", "**Knowledge** · 0/6 answered", "**Queries and traffic** · 0/4 answered",
        "**Data and constraints** · 0/3 answered", "**Budget and team** · 0/2 answered"]
    assert [g.proto.expanded for g in groups] == [True, False, False, False, False]
    assert len(at.main.radio) == 18
    # Sidebar: the workspace and the offline providers are shown.
    assert at.sidebar.selectbox(key="workspace_select").value == "sample"
    sidebar_text = " ".join(c.value for c in at.sidebar.caption)
    assert "Extractive answerer (offline stand-in, not an LLM)" in sidebar_text


def test_answering_questions_updates_the_card_and_saves(app_test):
    at = app_test().run()
    at.radio(key="decide_q_knowledge_freshness").set_value("daily")
    at.radio(key="decide_q_citations").set_value("required")
    at.radio(key="decide_q_training_examples").set_value("none").run()
    assert not at.exception
    assert "RAG" in _subheaders(at)
    m = _metrics(at)
    assert (m["Confidence"], m["Margin (points)"], m["Answered"]) == ("clear", "7.5", "3/18")
    assert all(g.proto.expanded for g in at.main.expander if g.label.endswith(" answered"))
    # What drove it: points first, then the answer, then the question; widths that fit the result column
    # (446 px at 1400 px) and rows over 64 px tall, so the text wraps instead of running off to the right.
    table = at.dataframe[0]
    drivers = table.value
    assert list(drivers.columns) == ["points", "answer", "question"]
    assert drivers.iloc[0]["answer"] == "None or a handful (under 10)" and drivers.iloc[0]["points"] == 6
    config = json.loads(table.proto.columns)
    assert sum(config[c]["width"] for c in ("points", "answer", "question")) <= 446
    assert table.proto.row_height > 64
    # The downloads sit in a row that wraps, each as wide as its label.
    rows = _download_rows(at)
    assert len(rows) == 2 and all(r.proto.flex_container.direction == r.proto.flex_container.HORIZONTAL
                                  and r.proto.flex_container.wrap for r in rows)
    assert [b.proto.label for b in at.get("download_button")] == ["Download answers (YAML)", "Download result (JSON)"]
    assert any(c.value == "15 of 18 questions unanswered; they count as neutral." for c in at.caption)
    ws = workspace.open_workspace("sample")
    assert decision.saved_answers(ws) == {"knowledge_freshness": "daily", "citations": "required",
                                          "training_examples": "none"}
    assert decision.saved_result(ws)["recommendation"] == "rag"

    # A new session on the same workspace restores the answers and the result.
    again = app_test().run()
    assert again.radio(key="decide_q_citations").value == "required"
    assert "RAG" in _subheaders(again)


def test_preset_then_flip(app_test):
    at = app_test().run()
    at.selectbox(key="decide_preset").set_value("helpdesk_router").run()
    at.button[0].click().run()  # Apply preset
    assert "Hybrid (routing)" in _subheaders(at)
    assert _metrics(at)["Answered"] == "18/18"
    cfg = decision.load_decision_config()
    flips = decision.recommend(cfg, cfg.preset("helpdesk_router").answers).flips
    # Each flip is one sentence, its margin said in words; three are shown, the rest one click away.
    shown = next(m.value for m in at.markdown if m.value.startswith("- Answering "))
    assert shown.split("\n") == [f"- {escape_markdown(decision.flip_sentence(cfg, f))}" for f in flips[:3]]
    assert all(line.endswith(("point ahead of the next option.", "points ahead of the next option."))
               for line in shown.split("\n"))
    assert any(e.label == f"{len(flips) - 3} more" for e in at.expander)
    # Take the first flip shown and check the page follows it.
    for change in flips[0].changes:
        at.radio(key=f"decide_q_{change.question}").set_value(change.to_answer)
    at.run()
    assert cfg.option_label(flips[0].recommendation) in _subheaders(at)


def test_clear_answers(app_test):
    at = app_test().run()
    at.radio(key="decide_q_citations").set_value("required").run()
    at.button[1].click().run()  # Clear answers
    assert at.radio(key="decide_q_citations").value is None
    assert decision.saved_answers(workspace.open_workspace("sample")) == {}


def test_upload_answers_yaml(app_test):
    at = app_test().run()
    content = yaml.safe_dump({"task_specialization": "narrow", "style_consistency": "critical"}).encode()
    at.file_uploader(key="decide_upload").upload("answers.yaml", content, "application/x-yaml").run()
    assert not at.exception
    assert at.radio(key="decide_q_style_consistency").value == "critical"
    assert "Fine-tuning" in _subheaders(at)


def test_upload_of_bad_answers_shows_what_was_wrong(app_test):
    at = app_test().run()
    at.radio(key="decide_q_citations").set_value("required").run()
    at.file_uploader(key="decide_upload").upload("mine.yaml", b"freshness: daily\n", "application/x-yaml").run()
    assert not at.exception
    assert any("mine.yaml" in e.value and "unknown question id(s): freshness" in e.value for e in at.error)
    assert at.radio(key="decide_q_citations").value == "required"  # nothing lost


def test_switching_workspace_loads_its_answers(app_test):
    other = workspace.create_workspace("other")
    cfg = decision.load_decision_config()
    answers = dict(cfg.preset("brand_voice").answers)
    decision.save_decision(other, answers, decision.recommend(cfg, answers))
    at = app_test().run()
    at.sidebar.selectbox(key="workspace_select").set_value("other").run()
    assert not at.exception
    assert "Fine-tuning" in _subheaders(at)
    assert at.radio(key="decide_q_style_consistency").value == "critical"


def test_create_and_delete_a_workspace_from_the_sidebar(app_test):
    at = app_test().run()
    at.sidebar.text_input(key="new_workspace_name").set_value("pilot")
    next(b for b in at.sidebar.button if b.label == "Create workspace").click().run()
    assert at.sidebar.selectbox(key="workspace_select").value == "pilot"
    assert workspace.list_workspaces() == ["pilot", "sample"]
    at.sidebar.text_input(key="new_workspace_name").set_value("bad name!")
    next(b for b in at.sidebar.button if b.label == "Create workspace").click().run()
    assert any("invalid workspace name 'bad name!'" in e.value for e in at.sidebar.error)

    delete = next(b for b in at.sidebar.button if b.label == "Delete this workspace")
    assert delete.disabled  # needs the confirmation first
    at.sidebar.checkbox(key="confirm_delete").check().run()
    next(b for b in at.sidebar.button if b.label == "Delete this workspace").click().run()
    assert not at.exception
    assert workspace.list_workspaces() == ["sample"]
    assert at.sidebar.selectbox(key="workspace_select").value == "sample"
