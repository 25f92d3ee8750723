"""The Decide page, clicked through with AppTest."""
import re

import yaml

from workbench import decision, workspace


def _subheaders(at):
    return [s.value for s in at.subheader]


def _metrics(at):
    """The figures in the result card's summary line, e.g. Confidence **clear** · margin **7.5** points."""
    line = next(m.value for m in at.markdown if m.value.startswith("Confidence **"))
    confidence, margin, answered = re.findall(r"\*\*(.+?)\*\*", line)
    return {"Confidence": confidence, "Margin (points)": margin, "Answered": answered}


def test_fresh_workspace_asks_for_answers(app_test):
    at = app_test().run()
    assert not at.exception
    assert "Answer a few questions to get a recommendation" in _subheaders(at)
    assert _metrics(at)["Answered"] == "0/18"
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
    drivers = at.dataframe[0].value
    assert drivers.iloc[0]["answer"] == "None or a handful (under 10)" and drivers.iloc[0]["contribution"] == 6
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
    flips = [m.value for m in at.markdown if "⇒" in m.value]
    assert flips, "the page lists what would flip the recommendation"
    # Take the first flip shown and check the page follows it.
    cfg = decision.load_decision_config()
    first = decision.recommend(cfg, cfg.preset("helpdesk_router").answers).flips[0]
    for change in first.changes:
        at.radio(key=f"decide_q_{change.question}").set_value(change.to_answer)
    at.run()
    assert cfg.option_label(first.recommendation) in _subheaders(at)


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
