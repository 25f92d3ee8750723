"""Workbench: decide between fine-tuning, RAG or a hybrid, estimate it, and prototype it on your data.

The library behind the app and the CLI; it never imports streamlit, so it works from notebooks too.
The names below are imported on first use, so that `import workbench.decision` (the app's first page) does
not load the cost model and its numeric stack.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "costs": ["Estimate", "compute", "estimate", "resolve"],
    "decision": ["DecisionConfig", "Recommendation", "load_decision_config", "recommend"],
    "pricing": ["PriceBook", "load_pricing"],
    "scenario": ["DataStats", "Scenario", "default_scenario", "load_scenario", "prefill", "scenario_from_dict"],
    "sensitivity": ["sweep", "tornado"],
    "errors": ["WorkbenchError"],
    "workspace": ["Workspace", "create_workspace", "delete_workspace", "list_workspaces", "open_workspace"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:          # a submodule, as `workbench.costs` after a plain `import workbench`
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'workbench' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
