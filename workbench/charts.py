"""Plotly figures shared by the pages and the HTML report (no streamlit here).

Every figure sets its own title, margins that grow to fit its labels, and a legend under the plot: the
default plotly template is streamlit's once the app runs (no automargin), and the memo is made there too.
No figure has a fixed width, so each one fills a 1400 px screen or a phone's.
"""
from __future__ import annotations

import textwrap

import plotly.graph_objects as go

from .costs import OPTION_LABELS, Estimate, format_usd
from .decision import DecisionConfig, Recommendation
from .sensitivity import Sweep, Tornado

# One colour per option, the same in every chart.
OPTION_COLOURS = {
    "fine_tuning": "#4C78A8",
    "rag": "#F58518",
    "hybrid_sequential": "#54A24B",
    "hybrid_routing": "#B279A2",
}
LABEL_WIDTH = 12      # characters per line of a category label: five arms fit side by side on a phone
TITLE_WIDTH = 50      # characters per line of a long title or axis title


def wrap(text: str, width: int = LABEL_WIDTH) -> str:
    """A label broken at spaces into lines (plotly's <br>) of about `width` characters, so ticks never overlap."""
    return "<br>".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text


def _layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    """Title above the plot, legend under it, margins that fit every label, whatever the plotly template."""
    fig.update_layout(
        title=dict(text=title, x=0, xref="container", xanchor="left", yref="paper", y=1, yanchor="bottom",
                   pad=dict(l=10, b=12), automargin=True, font=dict(size=15)),
        margin=dict(l=10, r=10, t=10, b=10, autoexpand=True),
        legend=dict(orientation="h", x=0, xanchor="left", yref="container", y=0, yanchor="bottom"),
        **kwargs)
    fig.update_xaxes(automargin=True, title_standoff=12)
    fig.update_yaxes(automargin=True, title_standoff=12)
    return fig


def decision_by_group(cfg: DecisionConfig, result: Recommendation) -> go.Figure:
    """Grouped horizontal bars: how many points each option earns in each factor group."""
    groups = list(reversed(cfg.groups))  # first group on top
    fig = go.Figure()
    for opt in reversed(cfg.options):
        fig.add_bar(
            name=opt.label,
            y=[wrap(g.label) for g in groups],
            x=[result.group_scores[g.id][opt.id] for g in groups],
            orientation="h",
            marker_color=OPTION_COLOURS.get(opt.id),
            customdata=[g.label for g in groups],
            hovertemplate=f"{opt.label}<br>%{{customdata}}: %{{x:g}} points<extra></extra>",
        )
    fig.add_vline(x=0, line_width=1, line_color="#888")
    return _layout(fig, "Points per option in each factor group", barmode="group", height=480,
                   xaxis_title="points (weight x answer points)", legend_traceorder="reversed")


# --- Estimate --------------------------------------------------------------------------------------

COMPONENT_COLOURS = {
    "inference": "#4C78A8", "hosting": "#9D755D", "retraining": "#E45756", "query embedding": "#72B7B2",
    "re-embedding": "#54A24B", "vector store": "#EECA3B",
}
STAGE_COLOURS = {"route": "#BAB0AC", "embed query": "#72B7B2", "vector search": "#54A24B",
                 "time to first token": "#F58518", "generation": "#4C78A8"}


def monthly_by_component(est: Estimate) -> go.Figure:
    """Stacked bars: average monthly cost of each option, split by what it pays for."""
    options = list(est.options.values())
    components = [c for c in COMPONENT_COLOURS if any(o.monthly_by_component.get(c, 0) > 0 for o in options)]
    fig = go.Figure()
    for comp in components:
        values = [o.monthly_by_component.get(comp, 0) for o in options]
        fig.add_bar(name=comp, x=[wrap(o.label) for o in options], y=values, marker_color=COMPONENT_COLOURS[comp],
                    customdata=[[format_usd(v), o.label] for v, o in zip(values, options)],
                    hovertemplate=f"{comp}: %{{customdata[0]}} / month<extra>%{{customdata[1]}}</extra>")
    return _layout(fig, "Average monthly cost by component", barmode="stack", height=420,
                   yaxis=dict(title="USD per month (horizon average)", tickprefix="$", tickformat=",~f",
                              rangemode="tozero"))


def cumulative_cost(est: Estimate) -> go.Figure:
    """Cumulative cost of each option month by month (month 0 = set-up), with break-even points marked."""
    fig = go.Figure()
    for opt, o in est.options.items():
        fig.add_scatter(name=o.label, x=list(range(len(o.cumulative_usd))), y=o.cumulative_usd, mode="lines",
                        line=dict(color=OPTION_COLOURS[opt], width=2),
                        customdata=[format_usd(v) for v in o.cumulative_usd],
                        hovertemplate=f"{o.label}<br>month %{{x}}: %{{customdata}}<extra></extra>")
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
    return _layout(fig, "Cumulative cost by month", height=420, xaxis_title="month (0 = set-up)",
                   yaxis=dict(title="cumulative USD", tickprefix="$", tickformat=",~f", rangemode="tozero"))


def cost_per_query(est: Estimate) -> go.Figure:
    """One bar per option: what answering one query costs to run (set-up left out)."""
    options = list(est.options.values())
    money = [format_usd(o.cost_per_query_usd) for o in options]
    fig = go.Figure(go.Bar(x=[wrap(o.label) for o in options], y=[o.cost_per_query_usd for o in options],
                           marker_color=[OPTION_COLOURS[o.option] for o in options],
                           text=money, textposition="outside", cliponaxis=False,
                           customdata=[[m, o.label] for m, o in zip(money, options)],
                           hovertemplate="%{customdata[1]}: %{customdata[0]} per query<extra></extra>"))
    top = max((o.cost_per_query_usd for o in options), default=0) or 1.0
    return _layout(fig, "Running cost per query", height=360, showlegend=False,
                   yaxis=dict(title="USD per query", tickprefix="$", range=[0, top * 1.2]))


def latency_by_stage(est: Estimate) -> go.Figure:
    """Stacked horizontal bars: where the time of one answer goes, per option."""
    options = list(est.options.values())
    fig = go.Figure()
    for stage, colour in STAGE_COLOURS.items():
        values = [o.latency_ms.get(stage, 0) for o in options]
        if any(values):
            fig.add_bar(name=stage, y=[wrap(o.label) for o in options], x=values, orientation="h", marker_color=colour,
                        customdata=[o.label for o in options],
                        hovertemplate=f"{stage}: %{{x:,.0f}} ms<extra>%{{customdata}}</extra>")
    return _layout(fig, "Time of one answer, by stage", barmode="stack", height=360,
                   xaxis=dict(title="milliseconds per answer", rangemode="tozero"), yaxis=dict(autorange="reversed"))


def _amount(value: float, unit: str) -> str:
    return f"{value:,.0f} ms" if unit == "ms" else format_usd(value)


def tornado_chart(t: Tornado, top: int = 12) -> go.Figure:
    """Bars from the result at -50 % to the result at +50 % of each input, widest swing on top."""
    bars = t.bars[:top]
    unit = "ms" if t.metric == "latency" else "USD"
    fig = go.Figure()
    labels = [wrap(b.label, 24) for b in bars]
    for name, colour, value, result in (("input -50 %", "#4C78A8", "low_value", "low_result"),
                                        ("input +50 %", "#F58518", "high_value", "high_result")):
        fig.add_bar(name=name, y=labels, x=[getattr(b, result) - t.base_result for b in bars], base=t.base_result,
                    orientation="h", marker_color=colour,
                    customdata=[[b.label, f"{getattr(b, value):,.4g}", _amount(getattr(b, result), unit)]
                                for b in bars],
                    hovertemplate="%{customdata[0]} = %{customdata[1]}: %{customdata[2]}<extra></extra>")
    fig.add_vline(x=t.base_result, line_width=1, line_color="#444")
    a, b = OPTION_LABELS[t.option_a], OPTION_LABELS.get(t.option_b or "", "")
    what = f"{t.metric.replace('_', ' ')}: {a} minus {b}" if b else f"{t.metric.replace('_', ' ')} of {a}"
    return _layout(fig, "Inputs that move the result most (each -50 % and +50 %)", barmode="overlay",
                   height=140 + 30 * len(bars), xaxis_title=wrap(f"{what} ({unit})", TITLE_WIDTH),
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
    return _layout(fig, wrap(f"{sw.metric.replace('_', ' ')}, {what}", TITLE_WIDTH), height=440,
                   xaxis_title=wrap(x_label, TITLE_WIDTH), yaxis_title=wrap(y_label, TITLE_WIDTH))


# --- Data and RAG ----------------------------------------------------------------------------------

def chunk_sizes(all_sizes: list[int], doc_sizes: list[int], max_tokens: int) -> go.Figure:
    """Histogram of chunk sizes over the workspace, with this document's chunks overlaid."""
    fig = go.Figure()
    fig.add_histogram(x=all_sizes, name="all documents", marker_color="#BAB0AC", nbinsx=30)
    fig.add_histogram(x=doc_sizes, name="this document", marker_color="#4C78A8", nbinsx=30)
    fig.add_vline(x=max_tokens, line_dash="dash", line_color="#E45756", annotation_text="max tokens",
                  annotation_position="top left", annotation_yanchor="top")
    return _layout(fig, "Chunk sizes", barmode="overlay", height=320, xaxis_title="tokens per chunk",
                   yaxis_title="chunks")


def answer_latency(latency_ms: dict[str, float]) -> go.Figure:
    """One stacked bar: where the time of this answer went."""
    stages = [k for k in latency_ms if k != "total"]
    colours = {"embed query": "#72B7B2", "search": "#54A24B", "generate": "#4C78A8"}
    fig = go.Figure()
    for stage in stages:
        fig.add_bar(name=stage, x=[latency_ms[stage]], y=["this answer"], orientation="h",
                    marker_color=colours.get(stage, "#999"), hovertemplate=f"{stage}: %{{x:,.0f}} ms<extra></extra>")
    return _layout(fig, "Where this answer's time went", barmode="stack", height=230,
                   xaxis=dict(title="milliseconds", rangemode="tozero"), yaxis=dict(showticklabels=False))


# --- Fine-tune -------------------------------------------------------------------------------------

def token_histogram(per_example: list[int], limit: int | None,
                    what: str = "tokens per training example (billed framing included)",
                    title: str = "Training examples by length") -> go.Figure:
    """How many training examples have each length, with the provider's token limit when it is near."""
    fig = go.Figure(go.Histogram(x=per_example, nbinsx=30, marker_color="#4C78A8",
                                 hovertemplate="%{x} tokens: %{y} examples<extra></extra>"))
    if limit and per_example and max(per_example) > limit * 0.8:
        fig.add_vline(x=limit, line_dash="dash", line_color="#E45756", annotation_text="token limit",
                      annotation_position="top left", annotation_yanchor="top")
    return _layout(fig, title, height=320, showlegend=False, xaxis_title=wrap(what, TITLE_WIDTH),
                   yaxis_title="examples")


def loss_curves(metrics: list[dict], unit: str = "step") -> go.Figure:
    """Training and validation loss against what each row's "step" counts: `unit` is "epoch" for the
    trainers on this machine (one row per epoch), "step" for hosted jobs (one row per training step)."""
    fig = go.Figure()
    steps = [m["step"] for m in metrics]
    for key, name, colour in (("train_loss", "training loss", "#4C78A8"), ("valid_loss", "validation loss", "#F58518")):
        values = [m.get(key) for m in metrics]
        if key == "train_loss" or any(v is not None for v in values):
            fig.add_scatter(x=steps, y=values, name=name, mode="lines+markers", line=dict(color=colour),
                            connectgaps=True, hovertemplate=f"{unit} %{{x}}: {name} %{{y:.4f}}<extra></extra>")
    return _layout(fig, f"Loss by {unit}", height=340, xaxis_title=unit, yaxis=dict(title="loss", rangemode="tozero"))


# --- Compare ---------------------------------------------------------------------------------------

ARM_COLOURS = {"base": "#BAB0AC", "rag": "#F58518", "ft": "#4C78A8", "ft_rag": "#54A24B", "router": "#B279A2"}


def _whiskers(m: dict, metric: str = "f1") -> dict:
    """A bootstrap interval as error bars; none below metrics.MIN_N questions (the interval is None)."""
    value, low, high = m[metric], m[f"{metric}_ci_low"], m[f"{metric}_ci_high"]
    return dict(type="data", symmetric=False, array=[0 if high is None else high - value],
                arrayminus=[0 if low is None else value - low])


def metric_bars(summary: dict, arms: list[str], metric: str) -> go.Figure:
    """One horizontal bar per arm (first arm on top) with its 95 % bootstrap interval; horizontal, so the
    arms' names stay level however narrow the screen."""
    shown = [a for a in arms if summary[a]["metrics"].get(metric) is not None]
    whiskers = [_whiskers(summary[a]["metrics"], metric) for a in shown]
    name = metric.replace("_", " ")
    fig = go.Figure(go.Bar(
        y=[wrap(summary[a]["label"], 16) for a in shown], x=[summary[a]["metrics"][metric] for a in shown],
        orientation="h", marker_color=[ARM_COLOURS.get(a, "#999") for a in shown],
        customdata=[summary[a]["label"] for a in shown],
        error_x=dict(type="data", symmetric=False, array=[w["array"][0] for w in whiskers],
                     arrayminus=[w["arrayminus"][0] for w in whiskers]),
        hovertemplate=f"%{{customdata}}: {name} %{{x:.3f}}<extra></extra>"))
    return _layout(fig, f"{name[:1].upper()}{name[1:]} by arm, with 95 % intervals", height=120 + 56 * len(shown),
                   showlegend=False, xaxis=dict(title=f"{name} (95% CI)", rangemode="tozero"),
                   yaxis=dict(autorange="reversed"))


def latency_boxes(summary: dict, arms: list[str]) -> go.Figure:
    """The spread of answer times per arm, one horizontal box each (first arm on top)."""
    fig = go.Figure()
    for a in arms:
        values = [sum(r["latency_ms"].values()) for r in summary[a]["per_question"] if not r.get("error")]
        fig.add_box(x=values, name=wrap(summary[a]["label"], 16), orientation="h",
                    marker_color=ARM_COLOURS.get(a, "#999"), boxpoints="outliers")
    return _layout(fig, "Answer time per question", height=120 + 56 * len(arms), showlegend=False,
                   xaxis=dict(title="milliseconds per question", rangemode="tozero"), yaxis=dict(autorange="reversed"))


def quality_vs_cost(summary: dict, arms: list[str]) -> go.Figure:
    """F1 of each arm against its measured cost per query, or against its median latency when no arm cost
    anything (offline every answer is free): the title says which. Arms are told apart by the legend and
    the hover, never by text labels, which stack on each other when points meet."""
    shown = [a for a in arms if summary[a]["metrics"].get("f1") is not None]
    by_cost = any(summary[a]["metrics"].get("cost_per_query_usd") for a in shown)
    unpriced = [summary[a]["label"] for a in shown if by_cost and summary[a]["metrics"].get("cost_per_query_usd") is None]
    fig = go.Figure()
    for a in shown:
        m, label = summary[a]["metrics"], summary[a]["label"]
        x = m.get("cost_per_query_usd") if by_cost else m.get("latency_ms_p50")
        if x is None:
            continue
        where = f"{format_usd(x)} per query" if by_cost else f"{x:,.0f} ms median"
        fig.add_scatter(x=[x], y=[m["f1"]], mode="markers", name=label, customdata=[where], cliponaxis=False,
                        marker=dict(size=14, color=ARM_COLOURS.get(a, "#999"), opacity=0.85,
                                    line=dict(width=1, color="#333")),
                        error_y=_whiskers(m),
                        hovertemplate=f"{label}<br>%{{customdata}}<br>F1 %{{y:.3f}}<extra></extra>")
    if by_cost:
        title = "F1 against measured cost per query"
        if unpriced:
            title += "<br><sup>" + wrap(f"not shown, no known price: {', '.join(unpriced)}", 60) + "</sup>"
        xaxis = dict(title="measured cost per query (USD)", tickprefix="$", rangemode="tozero")
    else:
        title = ("F1 against median latency<br><sup>every measured cost is "
                 f"{format_usd(0)} or unknown, so latency is shown instead</sup>")
        xaxis = dict(title="median answer time (ms)", rangemode="tozero")
    return _layout(fig, title, height=440, xaxis=xaxis, yaxis=dict(title="F1 (95% CI)", rangemode="tozero"))
