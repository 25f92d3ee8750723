"""Export a Jupyter notebook that reproduces a workspace's analysis with the workbench library.

Cells follow the steps (Decide, Estimate, Data, RAG, Fine-tune, Compare) with the workspace's settings
written in, so an engineer can continue in a notebook. The last cell gathers the headline figures in
FIGURES, which lets a test check that the notebook reproduces what the app shows.
"""
from __future__ import annotations

import json
import pprint
from typing import Any

from . import decision, evaluation, index
from .workspace import Workspace


def _code(source: str) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": source.strip("\n").splitlines(keepends=True)}


def _md(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source.strip("\n").splitlines(keepends=True)}


def _literal(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def build(ws: Workspace) -> dict[str, Any]:
    """The notebook as a dict in nbformat 4 (write it with json.dump)."""
    answers = decision.saved_answers(ws)
    working = ws.get_state("estimate_working")
    retrieval = index.load_settings(ws).model_dump(mode="json")
    runs = [r for r in evaluation.runs(ws) if r["results"]]
    run_id = runs[0]["id"] if runs else None
    cells = [
        _md(f"# Workspace `{ws.name}`: fine-tuning, RAG or a hybrid\n\n"
            "Reproduces the workbench's analysis with the `workbench` library, step by step. Run the cells in "
            "order; each step's settings are those saved in the workspace when this notebook was exported."),
        _code(f"""
import os
os.environ.setdefault("WORKBENCH_HOME", {str(ws.path.parent)!r})

import pandas as pd
from workbench import corpus, costs, decision, evaluation, finetune, index, pricing, rag, scenario, splits
from workbench.providers import get_chat_model, get_embedder
from workbench.workspace import open_workspace

ws = open_workspace({ws.name!r})
FIGURES = {{}}
"""),
        _md("## 1. Decide\nThe answers to the decision questions (question id: answer id)."),
        _code(f"""
answers = {_literal(answers)}
decision_cfg = decision.load_decision_config()
recommendation = decision.recommend(decision_cfg, answers)
FIGURES["recommendation"] = recommendation.recommendation
FIGURES["scores"] = recommendation.scores
print(recommendation.label, recommendation.confidence, recommendation.scores)
pd.DataFrame([{{"question": d.question, "answer": d.answer, "contribution": d.contribution}}
              for d in recommendation.drivers])
"""),
        _md("## 2. Estimate\nThe scenario as it stood on the Estimate page, priced with the workspace's custom prices."),
        _code(f"""
book = pricing.load_pricing().with_custom(pricing.saved_custom_prices(ws))
working = {_literal(working)}
the_scenario = (scenario.Scenario.model_validate(working) if working else
                scenario.prefill(scenario.default_scenario(), answers, corpus.data_stats(ws))[0])
estimate = costs.estimate(the_scenario, book)
FIGURES["total_cost_usd"] = {{o: e.total_cost_usd for o, e in estimate.options.items()}}
pd.DataFrame([{{"option": e.label, "setup": e.setup_cost_usd, "monthly": e.monthly_cost_usd,
               "per query": e.cost_per_query_usd, "total": e.total_cost_usd, "latency ms": e.latency_ms["total"]}}
              for e in estimate.options.values()])
"""),
        _md("## 3. Data"),
        _code("""
documents = corpus.documents(ws)
pairs = corpus.qa_pairs(ws)
FIGURES["documents"] = len(documents)
FIGURES["pairs"] = len(pairs)
pd.DataFrame(documents)[["doc_id", "fmt", "tokens", "lang", "chunks"]]
"""),
        _md("## 4. RAG\nRetrieval settings from the RAG page; the index is rebuilt only if documents changed."),
        _code(f"""
embedder = get_embedder()
retrieval = index.RetrievalSettings.model_validate({_literal(retrieval["retrieval"])})
if index.index_meta(ws) is None or index.index_is_stale(ws):
    index.build_index(ws, embedder)
retriever = index.Retriever(ws, embedder)
question = pairs[0].question if pairs else "What is this about?"
answer = rag.ask(question, retriever, get_chat_model(), retrieval)
print(question, "->", answer.text)
[(c.doc_id, round(c.relevance, 2)) for c in answer.citations]
"""),
        _md("## 5. Fine-tune\nThe saved split, the checks on its training side, and the jobs run so far."),
        _code("""
split = splits.saved_split(ws)
checks = finetune.check_workspace(ws)
FIGURES["training_examples"] = checks.examples
print(f"{checks.examples} examples, format {'OK' if checks.ok else 'has errors'}")
pd.DataFrame([{"job": j["id"], "provider": j["provider"], "state": j["state"], "model": j["fine_tuned_model"]}
              for j in finetune.jobs(ws)])
"""),
        _md("## 6. Compare\nThe latest comparison run, summarised again from its saved per-question results."),
        _code(f"""
run_id = {run_id!r}
if run_id:
    summary = evaluation.summarize(ws, run_id)
    FIGURES["f1"] = {{arm: summary[arm]["metrics"]["f1"] for arm in summary["run"]["arms"]}}
    table = pd.DataFrame({{arm: summary[arm]["metrics"] for arm in summary["run"]["arms"]}}).T
else:
    table = "No comparison has been run in this workspace."
table
"""),
        _code("FIGURES"),
    ]
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def to_json(ws: Workspace) -> str:
    return json.dumps(build(ws), indent=1)


def code_cells(notebook: dict[str, Any]) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
