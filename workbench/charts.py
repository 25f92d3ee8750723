"""Plotly figures shared by the pages and the HTML report (no streamlit here)."""
from __future__ import annotations

import plotly.graph_objects as go

from .decision import DecisionConfig, Recommendation

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
