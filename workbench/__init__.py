"""Workbench: decide between fine-tuning, RAG or a hybrid, estimate it, and prototype it on your data.

The library behind the app and the CLI; it never imports streamlit, so it works from notebooks too.
"""
from .decision import DecisionConfig, Recommendation, load_decision_config, recommend
from .errors import WorkbenchError
from .workspace import Workspace, create_workspace, delete_workspace, list_workspaces, open_workspace

__all__ = [
    "DecisionConfig", "Recommendation", "Workspace", "WorkbenchError", "create_workspace",
    "delete_workspace", "list_workspaces", "load_decision_config", "open_workspace", "recommend",
]
