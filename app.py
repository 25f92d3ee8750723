"""Workbench app: the steps as pages, with the workspace and active providers in the sidebar.

Run: streamlit run app.py [-- --workspace NAME]. A new session opens the workspace named in the link
(?workspace=NAME), else the one given to the server, else the last used one, else the sample.
"""
from __future__ import annotations

import argparse
import sys

import streamlit as st

from workbench import providers, sample, workspace
from workbench.errors import WorkbenchError
from workbench.safe_text import escape_markdown

st.set_page_config(page_title="Workbench: fine-tune, RAG or hybrid", page_icon=":material/explore:", layout="wide")


def _server_workspace() -> str | None:
    """The workspace given to the server (`streamlit run app.py -- --workspace NAME`), if any."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workspace")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.workspace


if "workspace_select" not in st.session_state:
    st.session_state.workspace_select, passed_over = workspace.start_workspace(
        st.query_params.get("workspace"), _server_workspace())
    if passed_over:
        st.session_state.workspace_notice = passed_over
else:  # set, not only chosen: a page change in the browser would otherwise put the first workspace back
    st.session_state.workspace_select = st.session_state.workspace_select


def _create_workspace() -> None:
    name = st.session_state.new_workspace_name.strip()
    try:
        workspace.create_workspace(name)
    except WorkbenchError as exc:
        st.session_state.workspace_error = str(exc)
    else:
        st.session_state.workspace_select = name
        st.session_state.new_workspace_name = ""


def _delete_workspace() -> None:
    name = st.session_state.workspace_select
    try:
        workspace.delete_workspace(name)
    except WorkbenchError as exc:
        st.session_state.workspace_error = str(exc)
    else:
        remaining = workspace.list_workspaces()
        st.session_state.workspace_select = remaining[0] if remaining else workspace.DEFAULT_WORKSPACE
        st.session_state.confirm_delete = False


with st.sidebar:
    st.markdown("### Workspace")
    if "workspace_notice" in st.session_state:
        st.warning(escape_markdown(st.session_state.pop("workspace_notice")))  # quotes the name in the link
    try:
        ws = workspace.open_workspace(st.session_state.workspace_select, create=True)
    except WorkbenchError as exc:
        st.error(escape_markdown(exc))  # the message quotes the name asked for
        ws = workspace.open_workspace(workspace.DEFAULT_WORKSPACE, create=True)
        st.session_state.workspace_select = ws.name
    if ws.name == workspace.DEFAULT_WORKSPACE:
        with st.spinner("Loading the sample workspace..."):
            sample.ensure_sample(ws)  # once: a workspace that has had an upload is left as it is
    st.selectbox("Current workspace", workspace.list_workspaces(), key="workspace_select")
    with st.expander("Manage workspaces"):
        st.text_input("New workspace name", placeholder="my-project", key="new_workspace_name")
        st.button("Create workspace", on_click=_create_workspace)
        st.checkbox(f"Yes, delete '{escape_markdown(ws.name)}' and everything in it", key="confirm_delete")
        st.button("Delete this workspace", on_click=_delete_workspace,
                  disabled=not st.session_state.get("confirm_delete"))
        if "workspace_error" in st.session_state:
            st.error(escape_markdown(st.session_state.pop("workspace_error")))  # quotes the name typed
    st.caption(f"Stored in {escape_markdown(ws.path)}")
    former = workspace.former_home()
    if former:
        st.caption(f"Workspaces made by earlier versions are in {escape_markdown(former)}: start the app with "
                   f"{workspace.HOME_ENV} set to that folder to open them.")

    st.markdown("### Providers")
    try:
        active = providers.active_providers(providers.load_providers_config())
    except WorkbenchError as exc:
        st.error(escape_markdown(exc))
        active = []
    for p in active:
        badge = "offline" if p.offline else "remote"
        st.caption(f"**{p.role.replace('_', '-')}**: {escape_markdown(p.label)} · _{badge}_"
                   + (f" · cannot run here: {escape_markdown(p.unavailable)}" if p.unavailable else ""))
    if any(p.name == "openai" for p in active) and st.button("Test connection", key="providers_test"):
        try:
            found = providers.check_connection()
        except WorkbenchError as exc:
            st.error(escape_markdown(exc))
        else:
            st.success(f"{escape_markdown(found.base_url)} answers: {len(found.models)} model(s); "
                       + "; ".join(f"{role}: {escape_markdown(m)} is offered" for role, m in found.checked.items()))
    for plugin, why in providers.REGISTRY.broken.items():
        st.warning(f"Provider plugin {escape_markdown(plugin)} failed to load: {escape_markdown(why)}")

if st.session_state.get("workspace_remembered") != ws.name:  # once per switch: the next session starts here
    workspace.remember_last_used(ws.name)
    st.session_state.workspace_remembered = ws.name
if st.query_params.get("workspace") != ws.name:                # the address bar names it, so a link opens it
    st.query_params["workspace"] = ws.name

st.session_state.ws = ws
pages = [
    st.Page("pages/decide.py", title="Decide", icon=":material/explore:", default=True),
    st.Page("pages/estimate.py", title="Estimate", icon=":material/payments:"),
    st.Page("pages/data.py", title="Data", icon=":material/description:"),
    st.Page("pages/rag.py", title="RAG", icon=":material/search:"),
    st.Page("pages/finetune.py", title="Fine-tune", icon=":material/tune:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/balance:"),
    st.Page("pages/report.py", title="Report", icon=":material/summarize:"),
]
current = st.navigation(pages)
if "start_page" in st.session_state:
    st.switch_page(st.session_state.pop("start_page"))
current.run()
