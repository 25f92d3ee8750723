"""What every page needs from the app shell (app.py): the workspace it opened."""
from __future__ import annotations

import streamlit as st

from workbench import providers


def current_workspace(page: str):
    """The open workspace; a page opened before app.py ran (a deep link on a fresh server) goes through it."""
    if "ws" not in st.session_state:
        st.session_state.start_page = page
        st.switch_page("app.py")
    return st.session_state.ws


@st.cache_resource(max_entries=4, show_spinner="Loading the chat model...")
def _chat_model(name: str | None, config_key: tuple):
    return providers.get_chat_model(name=name)


def chat_model(name: str | None = None):
    """The chat model, made once per server process and providers file (threads share a loaded model)."""
    path = providers.providers_path()
    stamp = path.stat().st_mtime if path.is_file() else None
    return _chat_model(name, (str(path), stamp))
