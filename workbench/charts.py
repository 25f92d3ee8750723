"""Plotly figures shared by the pages and the HTML report (no streamlit here)."""
from __future__ import annotations

import plotly.graph_objects as go

from .costs import OPTION_LABELS, Estimate
from .decision import DecisionConfig, Recommendation
from .sensitivity import Sweep, Tornado

# One colour per option, the same in every chart.
OPTION_COLOURS = {
    "fine_tuning": "#4C78A8",
    "rag": "#F58518",
    "hybrid_sequential": "#54A24B",
    "hybrid_routing": "#B279A2",
}


def decision_by_group(cfg: DecisionConfig, result: Recommendation) -> go.Figure:
    """Grouped horizontal bars: how many points each option earns in each factor group."""
    groups = list(reversed(cfg.groups))  # first group on top
    fig = go.Figure()
    for opt in reversed(cfg.options):
        fig.add_bar(
            name=opt.label,
            y=[g.label for g in groups],
            x=[result.group_scores[g.id][opt.id] for g in groups],
            orientation="h",
            marker_color=OPTION_COLOURS.get(opt.id),
            hovertemplate=f"{opt.label}<br>%{{y}}: %{{x:g}} points<extra></extra>",
        )
    fig.update_layout(barmode="group", xaxis_title="points (weight x answer points)",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, traceorder="reversed"),
                      margin=dict(l=10, r=10, t=70, b=10), height=460)
    fig.add_vline(x=0, line_width=1, line_color="#888")
    return fig


# --- Estimate --------------------------------------------------------------------------------------

COMPONENT_COLOURS = {
    "inference": "#4C78A8", "hosting": "#9D755D", "retraining": "#E45756", "query embedding": "#72B7B2",
    "re-embedding": "#54A24B", "vector store": "#EECA3B",
}
STAGE_COLOURS = {"route": "#BAB0AC", "embed query": "#72B7B2", "vector search": "#54A24B",
                 "time to first token": "#F58518", "generation": "#4C78A8"}


def _layout(fig: go.Figure, **kwargs) -> go.Figure:
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                      **kwargs)
    return fig


def monthly_by_component(est: Estimate) -> go.Figure:
    """Stacked bars: average monthly cost of each option, split by what it pays for."""
    options = list(est.options.values())
    components = [c for c in COMPONENT_COLOURS if any(o.monthly_by_component.get(c, 0) > 0 for o in options)]
    fig = go.Figure()
    for comp in components:
        fig.add_bar(name=comp, x=[o.label for o in options], y=[o.monthly_by_component.get(comp, 0) for o in options],
                    marker_color=COMPONENT_COLOURS[comp],
                    hovertemplate=f"{comp}: %{{y:$,.2f}} / month<extra>%{{x}}</extra>")
    return _layout(fig, barmode="stack", yaxis_title="USD per month (average over the horizon)", height=380)


def cumulative_cost(est: Estimate) -> go.Figure:
    """Cumulative cost of each option month by month (month 0 = set-up), with break-even points marked."""
    fig = go.Figure()
    for opt, o in est.options.items():
        fig.add_scatter(name=o.label, x=list(range(len(o.cumulative_usd))), y=o.cumulative_usd, mode="lines",
                        line=dict(color=OPTION_COLOURS[opt], width=2),
                        hovertemplate=f"{o.label}<br>month %{{x}}: %{{y:$,.2f}}<extra></extra>")
    xs, ys, texts = [], [], []
    for b in est.break_even:
        if b.month is not None:
            later = est.options[b.a if b.cheaper_at_start == b.b else b.b]
            xs.append(b.month)
            ys.append(later.cumulative_usd[b.month])
            texts.append(f"{est.options[b.a].label} / {est.options[b.b].label}: break-even in month {b.month}")
    if xs:
        fig.add_scatter(name="break-even", x=xs, y=ys, mode="markers", text=texts,
                        marker=dict(symbol="diamond", size=11, color="#222"),
                        hovertemplate="%{text}<extra></extra>")
    return _layout(fig, xaxis_title="month", yaxis_title="cumulative USD", height=380)


def cost_per_query(est: Estimate) -> go.Figure:
    options = list(est.options.values())
    fig = go.Figure(go.Bar(x=[o.label for o in options], y=[o.cost_per_query_usd for o in options],
                           marker_color=[OPTION_COLOURS[o.option] for o in options],
                           text=[f"${o.cost_per_query_usd:.5f}" for o in options], textposition="outside",
                           hovertemplate="%{x}: %{y:$.6f} per query<extra></extra>"))
    return _layout(fig, yaxis_title="USD per query (running cost)", height=340)


def latency_by_stage(est: Estimate) -> go.Figure:
    """Stacked horizontal bars: where the time of one answer goes, per option."""
    options = list(est.options.values())
    fig = go.Figure()
    for stage, colour in STAGE_COLOURS.items():
        values = [o.latency_ms.get(stage, 0) for o in options]
        if any(values):
            fig.add_bar(name=stage, y=[o.label for o in options], x=values, orientation="h", marker_color=colour,
                        hovertemplate=f"{stage}: %{{x:,.0f}} ms<extra>%{{y}}</extra>")
    return _layout(fig, barmode="stack", xaxis_title="milliseconds per answer", height=300,
                   yaxis=dict(autorange="reversed"))


def tornado_chart(t: Tornado, top: int = 12) -> go.Figure:
    """Bars from the result at -50 % to the result at +50 % of each input, widest swing on top."""
    bars = t.bars[:top]
    fig = go.Figure()
    labels = [b.label for b in bars]
    fig.add_bar(name="input -50 %", y=labels, x=[b.low_result - t.base_result for b in bars], base=t.base_result,
                orientation="h", marker_color="#4C78A8",
                customdata=[[b.low_value, b.low_result] for b in bars],
                hovertemplate="%{y} = %{customdata[0]:,.4g}: %{customdata[1]:$,.2f}<extra></extra>")
    fig.add_bar(name="input +50 %", y=labels, x=[b.high_result - t.base_result for b in bars], base=t.base_result,
                orientation="h", marker_color="#F58518",
                customdata=[[b.high_value, b.high_result] for b in bars],
                hovertemplate="%{y} = %{customdata[0]:,.4g}: %{customdata[1]:$,.2f}<extra></extra>")
    fig.add_vline(x=t.base_result, line_width=1, line_color="#444")
    a, b = OPTION_LABELS[t.option_a], OPTION_LABELS.get(t.option_b or "", "")
    unit = "ms" if t.metric == "latency" else "USD"
    what = f"{t.metric.replace('_', ' ')}: {a} minus {b}" if b else f"{t.metric.replace('_', ' ')} of {a}"
    return _layout(fig, barmode="overlay", xaxis_title=f"{what} ({unit})", height=80 + 28 * len(bars),
                   yaxis=dict(autorange="reversed"))


def sweep_heatmap(sw: Sweep, x_label: str, y_label: str) -> go.Figure:
    """Heat map of the swept metric; the hover also names the cheapest option at each point."""
    what = (f"{OPTION_LABELS[sw.option_a]} minus {OPTION_LABELS[sw.option_b]}" if sw.option_b
            else OPTION_LABELS[sw.option_a])
    unit = "ms" if sw.metric == "latency" else "USD"
    values = sw.values
    limit = max((abs(v) for row in values for v in row), default=1.0) or 1.0
    fig = go.Figure(go.Heatmap(
        x=sw.x_values, y=sw.y_values, z=values,
        customdata=[[OPTION_LABELS[c] for c in row] for row in sw.cheapest],
        colorscale="RdBu_r" if sw.option_b else "Viridis", zmid=0 if sw.option_b else None,
        zmin=-limit if sw.option_b else None, zmax=limit if sw.option_b else None,
        colorbar=dict(title=unit),
        hovertemplate=(f"{x_label} %{{x:,.4g}}<br>{y_label} %{{y:,.4g}}<br>{what}: %{{z:,.2f}} {unit}"
                       "<br>cheapest: %{customdata}<extra></extra>")))
    return _layout(fig, xaxis_title=x_label, yaxis_title=y_label, height=420,
                   title=dict(text=f"{sw.metric.replace('_', ' ')}, {what}", x=0, font=dict(size=14)))


# --- Data and RAG ----------------------------------------------------------------------------------

def chunk_sizes(all_sizes: list[int], doc_sizes: list[int], max_tokens: int) -> go.Figure:
    """Histogram of chunk sizes over the workspace, with this document's chunks overlaid."""
    fig = go.Figure()
    fig.add_histogram(x=all_sizes, name="all documents", marker_color="#BAB0AC", nbinsx=30)
    fig.add_histogram(x=doc_sizes, name="this document", marker_color="#4C78A8", nbinsx=30)
    fig.add_vline(x=max_tokens, line_dash="dash", line_color="#E45756", annotation_text="max tokens")
    return _layout(fig, barmode="overlay", xaxis_title="tokens per chunk", yaxis_title="chunks", height=260)


def answer_latency(latency_ms: dict[str, float]) -> go.Figure:
    stages = [k for k in latency_ms if k != "total"]
    colours = {"embed query": "#72B7B2", "search": "#54A24B", "generate": "#4C78A8"}
    fig = go.Figure()
    for stage in stages:
        fig.add_bar(name=stage, x=[latency_ms[stage]], y=["this answer"], orientation="h",
                    marker_color=colours.get(stage, "#999"), hovertemplate=f"{stage}: %{{x:,.0f}} ms<extra></extra>")
    return _layout(fig, barmode="stack", xaxis_title="milliseconds", height=170)


# --- Fine-tune -------------------------------------------------------------------------------------

def token_histogram(per_example: list[int], limit: int | None,
                    what: str = "tokens per training example (billed framing included)") -> go.Figure:
    fig = go.Figure(go.Histogram(x=per_example, nbinsx=30, marker_color="#4C78A8",
                                 hovertemplate="%{x} tokens: %{y} examples<extra></extra>"))
    if limit and per_example and max(per_example) > limit * 0.8:
        fig.add_vline(x=limit, line_dash="dash", line_color="#E45756", annotation_text="token limit")
    return _layout(fig, xaxis_title=what, yaxis_title="examples", height=260)


def loss_curves(metrics: list[dict]) -> go.Figure:
    """Training and validation loss by step (epoch for the local trainer)."""
    fig = go.Figure()
    steps = [m["step"] for m in metrics]
    fig.add_scatter(x=steps, y=[m.get("train_loss") for m in metrics], name="training loss", mode="lines+markers",
                    line=dict(color="#4C78A8"))
    if any(m.get("valid_loss") is not None for m in metrics):
        fig.add_scatter(x=steps, y=[m.get("valid_loss") for m in metrics], name="validation loss",
                        mode="lines+markers", line=dict(color="#F58518"))
    return _layout(fig, xaxis_title="step", yaxis_title="loss", height=300)


# --- Compare ---------------------------------------------------------------------------------------

ARM_COLOURS = {"base": "#BAB0AC", "rag": "#F58518", "ft": "#4C78A8", "ft_rag": "#54A24B", "router": "#B279A2"}


def metric_bars(summary: dict, arms: list[str], metric: str) -> go.Figure:
    """One bar per arm with its 95 % bootstrap interval."""
    shown = [a for a in arms if summary[a]["metrics"].get(metric) is not None]
    values = [summary[a]["metrics"][metric] for a in shown]
    low = [summary[a]["metrics"][f"{metric}_ci_low"] for a in shown]
    high = [summary[a]["metrics"][f"{metric}_ci_high"] for a in shown]
    fig = go.Figure(go.Bar(
        x=[summary[a]["label"] for a in shown], y=values, marker_color=[ARM_COLOURS.get(a, "#999") for a in shown],
        error_y=dict(type="data", symmetric=False,   # no interval (too few questions): no whisker
                     array=[0 if h is None else h - v for h, v in zip(high, values)],
                     arrayminus=[0 if lo is None else v - lo for v, lo in zip(values, low)]),
        hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    return _layout(fig, yaxis_title=f"{metric.replace('_', ' ')} (95% CI)", height=360)


def latency_boxes(summary: dict, arms: list[str]) -> go.Figure:
    fig = go.Figure()
    for a in arms:
        values = [sum(r["latency_ms"].values()) for r in summary[a]["per_question"] if not r.get("error")]
        fig.add_box(y=values, name=summary[a]["label"], marker_color=ARM_COLOURS.get(a, "#999"), boxpoints="outliers")
    return _layout(fig, yaxis_title="milliseconds per question", height=380, showlegend=False)


def quality_vs_cost(summary: dict, arms: list[str]) -> go.Figure:
    fig = go.Figure()
    for a in arms:
        m = summary[a]["metrics"]
        if m.get("f1") is None:
            continue
        fig.add_scatter(x=[m["cost_per_query_usd"] or 0.0], y=[m["f1"]], mode="markers+text", name=summary[a]["label"],
                        text=[summary[a]["label"]], textposition="top center",
                        marker=dict(size=14, color=ARM_COLOURS.get(a, "#999")),
                        error_y=dict(type="data", symmetric=False,   # no interval below metrics.MIN_N questions
                                     array=[0 if m["f1_ci_high"] is None else m["f1_ci_high"] - m["f1"]],
                                     arrayminus=[0 if m["f1_ci_low"] is None else m["f1"] - m["f1_ci_low"]]),
                        hovertemplate="%{text}<br>$%{x:.6f} per query<br>F1 %{y:.3f}<extra></extra>")
    return _layout(fig, xaxis_title="measured cost per query (USD)", yaxis_title="F1 (95% CI)", height=380,
                   showlegend=False)
