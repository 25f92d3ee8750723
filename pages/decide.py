"""Decide: answer the questions, get fine-tuning / RAG / hybrid with its reasons and what would flip it."""
from __future__ import annotations

import json

import streamlit as st

from pageshell import current_workspace
from workbench import decision
from workbench.config import read_yaml
from workbench.errors import WorkbenchError
from workbench.safe_text import escape_markdown

# Widths (px) that fit the result column at 1400 px; rows over 64 px tall wrap their text (four lines here).
DRIVER_WIDTHS = {"points": 52, "answer": 150, "question": 230}
DRIVER_ROW_HEIGHT = 90
FLIPS_SHOWN = 3

ws = current_workspace("pages/decide.py")
cfg = decision.load_decision_config()


@st.cache_data(max_entries=256, show_spinner=False)
def _recommend(answers: tuple[tuple[str, str], ...], cfg_json: str) -> decision.Recommendation:
    """The result of a set of answers: the flips search is the slow part of a rerun, and its result is fixed."""
    return decision.recommend(decision.DecisionConfig.model_validate_json(cfg_json), dict(answers))


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

answers = {q.id: st.session_state[_key(q.id)] for q in cfg.questions
           if st.session_state.get(_key(q.id)) is not None}
left, right = st.columns(2, gap="large")

with left:
    for i, group in enumerate(cfg.groups):
        group_questions = [q for q in cfg.questions if q.group == group.id]
        answered = sum(q.id in answers for q in group_questions)
        # Until the first answer only the first group is open: the others stay one click away.
        with st.expander(f"**{escape_markdown(group.label)}** · {answered}/{len(group_questions)} answered",
                         expanded=bool(answers) or i == 0):
            st.caption(escape_markdown(group.description))
            for q in group_questions:
                labels = {a.id: a.label for a in q.answers}
                st.radio(q.text, [a.id for a in q.answers], index=None, key=_key(q.id),
                         format_func=labels.__getitem__, horizontal=True)
                st.caption(f"Why this matters: {escape_markdown(q.why)}")

result = _recommend(tuple(sorted(answers.items())), cfg.model_dump_json())
if answers != decision.saved_answers(ws):
    decision.save_decision(ws, answers, result)

with right:
    if not answers:
        with st.container(border=True):
            st.caption("Recommendation")
            st.subheader("Start here")
            st.markdown("Pick a situation under **Start from a preset** and press **Apply preset**, or answer the "
                        "first questions on the left. The recommendation, what drove it and what would change it "
                        "appear as soon as one question is answered.")
        st.stop()

    runner_up = cfg.option_label(result.runner_up)
    with st.container(border=True):
        st.caption("Recommendation")
        if result.confidence == "tie":
            st.subheader(f"Tie between {result.label} and {runner_up}")
            st.write("Answer more questions to break the tie.")
        else:
            st.subheader(result.label)
            st.write(next(o.description for o in cfg.options if o.id == result.recommendation))
        st.markdown(f"Confidence **{result.confidence}** · margin **{result.margin:g}** points over "
                    f"{escape_markdown(runner_up)} · answered **{len(answers)}/{len(cfg.questions)}**",
                    help=f"The margin is the recommendation's points minus the runner-up's. Confidence is clear at "
                         f"{cfg.confidence.clear:g} points or more, moderate at {cfg.confidence.moderate:g} or "
                         f"more, narrow below, and a tie at 0.")
        st.caption("Scores: " + ", ".join(f"{escape_markdown(cfg.option_label(o))} {s:g}"
                                          for o, s in result.scores.items()))

    from workbench import charts   # here, not at the top: the start state is the first page a server draws

    st.markdown("#### Points by factor group")
    st.plotly_chart(charts.decision_by_group(cfg, result), width="stretch")

    st.markdown("#### What drove it")
    st.caption(f"Points each answer gave {escape_markdown(result.label)} over {escape_markdown(runner_up)}: "
               "its points for the one minus its points for the other, times the question's weight. They add up "
               "to the margin.")
    drivers = [d for d in result.drivers if d.contribution != 0]
    if drivers:
        st.dataframe([{"points": d.contribution, "answer": d.answer_label, "question": d.question_text}
                      for d in drivers],
                     hide_index=True, width="stretch", row_height=DRIVER_ROW_HEIGHT,
                     height=DRIVER_ROW_HEIGHT * min(len(drivers), 8) + 40, column_config={
                         "points": st.column_config.NumberColumn(
                             width=DRIVER_WIDTHS["points"], format="%+g",
                             help=f"Points this answer gave {result.label} over {runner_up}"),
                         "answer": st.column_config.TextColumn(width=DRIVER_WIDTHS["answer"]),
                         "question": st.column_config.TextColumn(width=DRIVER_WIDTHS["question"])})
    else:
        st.write("No answer separates the top two options yet.")

    st.markdown("#### What would flip it")
    if result.flips:
        size = len(result.flips[0].changes)
        st.caption("Answers that, changed alone, would make another option win, closest first." if size == 1 else
                   f"No single answer changes it; these {size} changed answers together would, closest first.")
        sentences = [f"- {escape_markdown(decision.flip_sentence(cfg, f))}" for f in result.flips]
        st.markdown("\n".join(sentences[:FLIPS_SHOWN]))
        if len(sentences) > FLIPS_SHOWN:
            with st.expander(f"{len(sentences) - FLIPS_SHOWN} more"):
                st.markdown("\n".join(sentences[FLIPS_SHOWN:]))
    else:
        st.write("No change of up to three answers would change the recommendation.")

    if result.unanswered:
        st.caption(f"{len(result.unanswered)} of {len(cfg.questions)} questions unanswered; they count as neutral.")

    with st.container(horizontal=True):
        st.download_button("Download answers (YAML)", decision.answers_yaml(answers), "answers.yaml",
                           mime="application/x-yaml")
        st.download_button("Download result (JSON)", json.dumps(result.to_dict(), indent=2), "decision.json",
                           mime="application/json")
