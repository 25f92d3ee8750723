"""Report: the decision memo for stakeholders, and a notebook that reproduces the analysis."""
from __future__ import annotations

import streamlit as st

from pageshell import current_workspace
from workbench import notebook, report
from workbench.safe_text import escape_markdown

ws = current_workspace("pages/report.py")

st.title("Report: the decision memo")
st.markdown("Everything the workspace holds, in one memo: the team's answers and the recommendation with its "
            "drivers, the cost and latency estimate, the measured comparison with confidence intervals, where "
            "estimate and measurement disagree, the risks, and the sources and dates of the prices used.")

with st.spinner("Gathering the workspace's figures..."):
    data = report.build(ws)
markdown = report.to_markdown(data)

c1, c2, c3 = st.columns(3)
c1.download_button("Memo (Markdown)", markdown, f"decision-memo-{ws.name}.md", "text/markdown", width="stretch",
                   key="report_md")
if c2.button("Prepare the HTML memo", width="stretch", key="report_prepare_html"):
    st.session_state.report_html = report.to_html(data)
if "report_html" in st.session_state:
    c2.download_button("Memo (HTML, interactive charts)", st.session_state.report_html,
                       f"decision-memo-{ws.name}.html", "text/html", width="stretch", key="report_html_download")
c3.download_button("Notebook (.ipynb)", notebook.to_json(ws), f"workbench-{ws.name}.ipynb",
                   "application/x-ipynb+json", width="stretch", key="report_notebook")

if data.risks:
    with st.container(border=True):
        st.markdown("**Risks**")
        for r in data.risks:
            st.warning(escape_markdown(r))  # may name models, documents, the team's answers

st.divider()
st.markdown(markdown)  # user text is shown as text: Streamlit does not render raw HTML in Markdown
