"""Workbench: decide between fine-tuning, RAG or a hybrid, estimate it, and prototype it on your data.

The library behind the app and the CLI; it never imports streamlit, so it works from notebooks too.
"""
from .costs import Estimate, compute, estimate, resolve
from .decision import DecisionConfig, Recommendation, load_decision_config, recommend
from .pricing import PriceBook, load_pricing
from .scenario import DataStats, Scenario, default_scenario, load_scenario, prefill, scenario_from_dict
from .sensitivity import sweep, tornado
from .errors import WorkbenchError
from .workspace import Workspace, create_workspace, delete_workspace, list_workspaces, open_workspace

__all__ = [
    "DataStats", "DecisionConfig", "Estimate", "PriceBook", "Recommendation", "Scenario", "Workspace",
    "WorkbenchError", "compute", "create_workspace", "default_scenario", "delete_workspace", "estimate",
    "list_workspaces", "load_decision_config", "load_pricing", "load_scenario", "open_workspace", "prefill",
    "recommend", "resolve", "scenario_from_dict", "sweep", "tornado",
]
