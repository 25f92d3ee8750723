"""Decide: answer the questions, get fine-tuning / RAG / hybrid with its reasons and what would flip it."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pageshell import current_workspace
from workbench import charts, decision
from workbench.config import read_yaml
from workbench.errors import WorkbenchError
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/decide.py")
cfg = decision.load_decision_config()
questions = {q.id: q for q in cfg.questions}


def _key(qid: str) -> str:
    return f"decide_q_{qid}"


def _set_answers(answers: dict[str, str]) -> None:
    for q in cfg.questions:
        st.session_state[_key(q.id)] = answers.get(q.id)


# Restore the saved answers for a new session or workspace, and after another page was shown
# (Streamlit drops the state of widgets that were not on the last page).
if st.session_state.get("decide_loaded_for") != ws.name or any(
        _key(q.id) not in st.session_state for q in cfg.questions):
    _set_answers(decision.saved_answers(ws))
    st.session_state.decide_loaded_for = ws.name

st.title("Decide: fine-tuning, RAG or a hybrid?")
st.markdown("Answer what you can; unanswered questions count as neutral. The recommendation updates as "
            "you go and is saved in the workspace.")

with st.container(border=True):
    c1, c2, c3 = st.columns([3, 1, 2])
    preset_ids = [p.id for p in cfg.presets]
    preset = c1.selectbox("Start from a preset", preset_ids, index=None, placeholder="Choose a situation",
                          format_func=lambda pid: cfg.preset(pid).label, key="decide_preset")
    if preset:
        c1.caption(cfg.preset(preset).description)
    if c2.button("Apply preset", disabled=preset is None, width="stretch"):
        _set_answers(dict(cfg.preset(preset).answers))
        st.rerun()
    if c2.button("Clear answers", width="stretch"):
        _set_answers({})
        st.rerun()
    upload = c3.file_uploader("Load answers (YAML)", type=["yaml", "yml"], key="decide_upload")
    if upload is not None and st.session_state.get("decide_upload_done") != upload.file_id:
        try:
            text = upload.getvalue().decode("utf-8")
            data, _ = read_yaml(upload.name, text=text)
            loaded = decision.check_answers(cfg, data or {}, source=upload.name)
        except UnicodeDecodeError:
            c3.error(f"{escape_markdown(upload.name)}: not UTF-8 text")
        except WorkbenchError as exc:
            c3.error(escape_markdown(exc))  # names the file, may quote its content
        else:
            st.session_state.decide_upload_done = upload.file_id
            _set_answers(loaded)
            st.rerun()

left, right = st.columns([3, 2], gap="large")

with left:
    for group in cfg.groups:
        group_questions = [q for q in cfg.questions if q.group == group.id]
        answered = sum(st.session_state.get(_key(q.id)) is not None for q in group_questions)
        with st.expander(f"**{group.label}** · {answered}/{len(group_questions)} answered", expanded=True):
            st.caption(group.description)
            for q in group_questions:
                labels = {a.id: a.label for a in q.answers}
                st.radio(q.text, [a.id for a in q.answers], index=None, key=_key(q.id),
                         format_func=labels.__getitem__, horizontal=True)
                st.caption(f"Why this matters: {q.why}")

answers = {q.id: st.session_state[_key(q.id)] for q in cfg.questions
           if st.session_state.get(_key(q.id)) is not None}
result = decision.recommend(cfg, answers)
if answers != decision.saved_answers(ws):
    decision.save_decision(ws, answers, result)

with right:
    with st.container(border=True):
        st.caption("Recommendation")
        if not answers:
            st.subheader("Answer a few questions to get a recommendation")
        elif result.confidence == "tie":
            st.subheader(f"Tie between {result.label} and {cfg.option_label(result.runner_up)}")
            st.write("Answer more questions to break the tie.")
        else:
            st.subheader(result.label)
            st.write(next(o.description for o in cfg.options if o.id == result.recommendation))
        st.markdown(f"Confidence **{result.confidence}** · margin **{result.margin:g}** points · "
                    f"answered **{len(answers)}/{len(cfg.questions)}**")
        if answers:
            st.caption(f"Runner-up: {cfg.option_label(result.runner_up)} · scores: "
                       + ", ".join(f"{cfg.option_label(o)} {s:g}" for o, s in result.scores.items()))

    if answers:
        st.markdown("#### Points by factor group")
        st.plotly_chart(charts.decision_by_group(cfg, result), width="stretch")

    st.markdown("#### What drove it")
    st.caption(f"Points each answer gave {result.label} over {cfg.option_label(result.runner_up)}.")
    drivers = [d for d in result.drivers if d.contribution != 0]
    if drivers:
        st.dataframe(pd.DataFrame([{"question": d.question_text, "answer": d.answer_label,
                                    "contribution": d.contribution} for d in drivers]),
                     hide_index=True, width="stretch")
    else:
        st.write("No answer separates the top two options yet.")

    st.markdown("#### What would flip it")
    if result.flips:
        for f in result.flips:
            changes = "; ".join(
                f"**{questions[c.question].text}** "
                f"{questions[c.question].answer(c.from_answer).label if c.from_answer else '(unanswered)'}"
                f" → {questions[c.question].answer(c.to_answer).label}" for c in f.changes)
            st.markdown(f"- {changes} ⇒ **{cfg.option_label(f.recommendation)}** (by {f.margin:g})")
    else:
        st.write("No change of up to three answers would change the recommendation.")

    if result.unanswered:
        st.caption("Unanswered (neutral): " + ", ".join(questions[q].text for q in result.unanswered))

    d1, d2 = st.columns(2)
    d1.download_button("Download answers (YAML)", decision.answers_yaml(answers), "answers.yaml",
                       mime="application/x-yaml", width="stretch")
    d2.download_button("Download result (JSON)", json.dumps(result.to_dict(), indent=2), "decision.json",
                       mime="application/json", width="stretch")
