"""Report: the verdict and the decision memo for stakeholders, and a notebook that reproduces the analysis."""
from __future__ import annotations

import re

import streamlit as st

from pageshell import current_workspace
from workbench import notebook, report, verdict, workspace
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/report.py")


@st.cache_data(max_entries=8, show_spinner="Gathering the workspace's figures...")
def _memo(_ws, stamp: tuple) -> tuple[report.ReportData, str, str]:
    """The memo's data, its Markdown below the verdict shown above it, and the whole memo to download; built
    again only when the workspace or the configs changed."""
    data = report.build(_ws)
    return data, report.to_markdown(data, with_verdict=False), report.to_markdown(data)


@st.cache_data(max_entries=4, show_spinner="Writing the notebook...")
def _notebook(_ws, stamp: tuple) -> str:
    return notebook.to_json(_ws)


st.title("Report: the verdict and the decision memo")
st.markdown("One verdict from the three kinds of evidence the workspace holds: fit (Decide), cost and latency "
            "(Estimate) and measured quality (Compare). Below it, the whole memo: answers, estimate, measured "
            "comparison with confidence intervals, risks, and the sources and dates of the prices used.")

stamp = workspace.revision(ws)
data, markdown, full_md = _memo(ws, stamp)
v = data.verdict

with st.container(border=True, key="report_verdict"):
    st.caption("Verdict")
    st.subheader(escape_markdown(v.label) if v.option else "No verdict yet")
    st.markdown(escape_markdown(v.why))
    for col, part in zip(st.columns(len(v.parts)), v.parts):
        with col.container(border=True):
            st.markdown(f"**{part.title}** · points to **{escape_markdown(verdict.favours_label(part, v))}**")
            st.markdown(escape_markdown(part.text))  # quotes the team's answers and model names
    left, right = st.columns(2)
    with left:
        for title, lines in (("Where they agree", v.agree), ("Where they disagree", v.disagree)):
            if lines:
                st.markdown(f"**{title}**\n\n" + "\n".join(f"- {escape_markdown(x)}" for x in lines))
    with right:
        if v.would_change:
            st.markdown("**What would change the verdict**\n\n"
                        + "\n".join(f"- {escape_markdown(x)}" for x in v.would_change))
    for caveat in v.caveats:
        st.info(escape_markdown(caveat))

c1, c2, c3 = st.columns(3)
c1.download_button("Memo (Markdown)", full_md, f"decision-memo-{ws.name}.md", "text/markdown", width="stretch",
                   key="report_md")
if c2.button("Prepare the HTML memo", width="stretch", key="report_prepare_html"):
    st.session_state.report_html = (stamp, report.to_html(data))
if st.session_state.get("report_html", (None,))[0] == stamp:      # never a memo of other figures
    c2.download_button("Memo (HTML, interactive charts)", st.session_state.report_html[1],
                       f"decision-memo-{ws.name}.html", "text/html", width="stretch", key="report_html_download")
c3.download_button("Notebook (.ipynb)", _notebook(ws, stamp), f"workbench-{ws.name}.ipynb",
                   "application/x-ipynb+json", width="stretch", key="report_notebook")

if data.risks:
    with st.container(border=True):
        st.markdown("**Risks**")
        for r in data.risks:
            st.warning(escape_markdown(r))  # may name models, documents, the team's answers

st.divider()
# user text is shown as text (Streamlit renders no raw HTML in Markdown); a $ not yet escaped would start LaTeX
st.markdown(re.sub(r"(?<!\\)\$", r"\\$", markdown))
