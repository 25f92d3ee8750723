"""The figures of workbench/charts.py: titled, with margins that fit their labels under any plotly template
(the app's has no automargin), no fixed width, and honest axes for the quality-versus-cost chart."""
import plotly.io as pio
import pytest

from workbench import charts, costs, decision, pricing, scenario
from workbench.sensitivity import Sweep, Tornado, TornadoBar


@pytest.fixture(autouse=True)
def bare_template(monkeypatch):
    """A template with no automargin, as streamlit's (the default once the app runs, memo included)."""
    monkeypatch.setattr(pio.templates, "default", "none")


@pytest.fixture(scope="module")
def est():
    return costs.estimate(scenario.default_scenario(), pricing.load_pricing())


def arm(label: str, f1: float, cost: float | None, p50: float, low: float | None = None,
        high: float | None = None) -> dict:
    latencies = [p50 - 10, p50, p50 + 10]
    return {"label": label, "metrics": {"f1": f1, "f1_ci_low": low, "f1_ci_high": high, "cost_per_query_usd": cost,
                                        "latency_ms_p50": p50},
            "per_question": [{"latency_ms": {"generate": v}} for v in latencies]}


OFFLINE = {"base": arm("Base model (no context)", 0.05, 0.0, 3.0),
           "rag": arm("RAG", 0.46, 0.0, 1978.0, 0.33, 0.59),
           "ft": arm("Fine-tuned", 0.01, None, 122.0),
           "ft_rag": arm("Fine-tuned + RAG (sequential)", 0.42, 0.0, 1931.0, 0.30, 0.55)}


def every_figure(est):
    cfg = decision.load_decision_config()
    answers = dict(cfg.preset("support_bot").answers)
    tornado = Tornado("fine_tuning", "rag", "monthly", 500.0,
                      [TornadoBar("queries_per_month", "queries per month", 1e5, 5e4, 1.5e5, 300.0, 700.0)])
    sweep = Sweep("queries_per_month", [1e4, 1e5], "horizon_months", [6, 12], "monthly", "fine_tuning", "rag",
                  [[1.0, -2.0], [3.0, 4.0]], [["rag", "fine_tuning"], ["rag", "rag"]])
    arms = list(OFFLINE)
    return {
        "decision": charts.decision_by_group(cfg, decision.recommend(cfg, answers)),
        "monthly": charts.monthly_by_component(est), "cumulative": charts.cumulative_cost(est),
        "per query": charts.cost_per_query(est), "latency": charts.latency_by_stage(est),
        "tornado": charts.tornado_chart(tornado), "sweep": charts.sweep_heatmap(sweep, "queries per month", "months"),
        "chunks": charts.chunk_sizes([100, 200, 300], [200], 400),
        "answer": charts.answer_latency({"embed query": 12.0, "search": 3.0, "generate": 140.0, "total": 155.0}),
        "tokens": charts.token_histogram([40, 50, 60], 65536),
        "loss": charts.loss_curves([{"step": 1, "train_loss": 2.0, "valid_loss": 2.5}]),
        "bars": charts.metric_bars(OFFLINE, arms, "f1"), "boxes": charts.latency_boxes(OFFLINE, arms),
        "quality": charts.quality_vs_cost(OFFLINE, arms),
    }


def test_every_chart_has_a_title_fitted_margins_a_legend_under_it_and_no_fixed_width(est):
    for name, fig in every_figure(est).items():
        layout = fig.layout
        assert layout.title.text and layout.title.automargin, name
        assert layout.width is None and layout.autosize is not False, name          # fills a phone or a 1400 px page
        assert layout.xaxis.automargin is True and layout.yaxis.automargin is True, name
        assert layout.xaxis.title.standoff == 12 and layout.yaxis.title.standoff == 12, name   # titles clear of ticks
        assert (layout.legend.yref, layout.legend.y, layout.legend.yanchor) == ("container", 0, "bottom"), name


def test_long_category_labels_are_wrapped_and_hover_keeps_the_whole_name(est):
    figures = every_figure(est)
    assert list(figures["monthly"].data[0].x) == ["Fine-tuning", "RAG", "Hybrid<br>(fine-tune,<br>then RAG)",
                                                  "Hybrid<br>(routing)"]
    assert list(figures["latency"].data[0].y) == list(figures["monthly"].data[0].x)
    assert figures["monthly"].data[0].customdata[2][1] == "Hybrid (fine-tune, then RAG)"
    assert list(figures["decision"].data[0].y)[:2] == ["Budget and<br>team", "Data and<br>constraints"]
    assert list(figures["bars"].data[0].y) == ["Base model (no<br>context)", "RAG", "Fine-tuned",
                                               "Fine-tuned + RAG<br>(sequential)"]
    assert figures["bars"].data[0].orientation == "h" and figures["boxes"].data[0].orientation == "h"
    assert charts.wrap("a-very-long-identifier-without-spaces") == "a-very-long-identifier-without-spaces"


def test_money_on_charts_is_formatted_by_format_usd_and_latency_in_ms(est):
    per_query = charts.cost_per_query(est)
    assert list(per_query.data[0].text) == [costs.format_usd(o.cost_per_query_usd) for o in est.options.values()]
    assert per_query.data[0].cliponaxis is False                  # the label above the highest bar is not cut
    latency = charts.tornado_chart(Tornado("rag", None, "latency", 1000.0, [TornadoBar(
        "queries_per_month", "queries per month", 1e5, 5e4, 1.5e5, 800.0, 1200.0)]))
    assert list(latency.data[1].customdata[0]) == ["queries per month", "1.5e+05", "1,200 ms"]
    monthly = charts.tornado_chart(Tornado("rag", None, "monthly", 1000.0, [TornadoBar(
        "queries_per_month", "queries per month", 1e5, 5e4, 1.5e5, 800.0, 1234.5)]))
    assert monthly.data[1].customdata[0][2] == "$1,234.50"


def test_offline_quality_is_plotted_against_latency_and_the_title_says_why():
    fig = charts.quality_vs_cost(OFFLINE, list(OFFLINE))
    assert "every measured cost is $0.00 or unknown" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "median answer time (ms)" and fig.layout.xaxis.rangemode == "tozero"
    assert [(t.name, t.x[0], t.y[0]) for t in fig.data] == [
        ("Base model (no context)", 3.0, 0.05), ("RAG", 1978.0, 0.46), ("Fine-tuned", 122.0, 0.01),
        ("Fine-tuned + RAG (sequential)", 1931.0, 0.42)]
    assert {t.mode for t in fig.data} == {"markers"} and fig.layout.showlegend is not False   # legend, no stacked text
    assert fig.data[1].customdata[0] == "1,978 ms median"
    assert (fig.data[1].error_y.array[0], fig.data[1].error_y.arrayminus[0]) == pytest.approx((0.13, 0.13))


def test_priced_quality_is_plotted_against_cost_from_zero_naming_the_unpriced_arms():
    summary = {**OFFLINE, "rag": arm("RAG", 0.46, 0.0007, 1978.0)}
    fig = charts.quality_vs_cost(summary, list(summary))
    assert fig.layout.title.text.startswith("F1 against measured cost per query")
    assert "no known price: Fine-tuned" in fig.layout.title.text       # left out, and said so
    assert [(t.name, t.x[0]) for t in fig.data] == [("Base model (no context)", 0.0), ("RAG", 0.0007),
                                                    ("Fine-tuned + RAG (sequential)", 0.0)]
    assert fig.layout.xaxis.rangemode == "tozero" and fig.layout.xaxis.tickprefix == "$"
    assert fig.data[1].customdata[0] == f"{costs.format_usd(0.0007)} per query"   # $0.00070


def test_loss_curves_name_what_the_x_value_counts():
    rows = [{"step": 1, "train_loss": 2.0, "valid_loss": None}, {"step": 2, "train_loss": 1.5, "valid_loss": None}]
    by_epoch = charts.loss_curves(rows, "epoch")
    assert by_epoch.layout.title.text == "Loss by epoch" and by_epoch.layout.xaxis.title.text == "epoch"
    assert len(by_epoch.data) == 1 and list(by_epoch.data[0].x) == [1, 2]        # no validation loss: no line
    assert by_epoch.data[0].hovertemplate.startswith("epoch %{x}: training loss")
    assert charts.loss_curves(rows).layout.xaxis.title.text == "step"                # hosted jobs: training steps
