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
    """Grouped bars: how many points each option earns in each factor group."""
    groups = [g for g in cfg.groups]
    fig = go.Figure()
    for opt in cfg.options:
        fig.add_bar(
            name=opt.label,
            x=[g.label for g in groups],
            y=[result.group_scores[g.id][opt.id] for g in groups],
            marker_color=OPTION_COLOURS.get(opt.id),
            hovertemplate=f"{opt.label}<br>%{{x}}: %{{y:g}} points<extra></extra>",
        )
    fig.update_layout(barmode="group", yaxis_title="points (weight x answer points)",
                      legend_title_text="option", margin=dict(l=10, r=10, t=30, b=10), height=360)
    fig.add_hline(y=0, line_width=1, line_color="#888")
    return fig
