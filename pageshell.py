"""What every page needs from the app shell (app.py): the workspace it opened."""
from __future__ import annotations

import streamlit as st


def current_workspace(page: str):
    """The open workspace; a page opened before app.py ran (a deep link on a fresh server) goes through it."""
    if "ws" not in st.session_state:
        st.session_state.start_page = page
        st.switch_page("app.py")
    return st.session_state.ws
