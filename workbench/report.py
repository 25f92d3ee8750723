"""The decision memo: Markdown, or one self-contained HTML file with interactive charts.

Built only from what the workspace holds (answers, scenario, measured comparison, checks, prices), so it
never contains a key or a setting read from the environment. In HTML every user-provided text is escaped
(Jinja2 autoescaping); charts are plotly figures with their JavaScript inlined.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from . import charts, corpus, costs, decision, evaluation, finetune, pricing, scenario, synthetic, verdict
from .errors import WorkbenchError
from .safe_text import escape_markdown
from .workspace import Workspace


@dataclass
class ReportData:
    workspace: str
    generated: str
    answers: list[dict[str, str]]
    recommendation: decision.Recommendation | None
    decision_cfg: decision.DecisionConfig
    estimate: costs.Estimate | None
    estimate_error: str | None
    comparison: dict[str, Any] | None
    measured_vs_estimate: list[dict[str, Any]]
    risks: list[str]
    sources: list[dict[str, str]]
    documents: int
    pairs: int
    document_rows: list[dict[str, Any]] = field(default_factory=list)
    synthetic: str | None = None          # how the workspace's generated pairs were made
    verdict: verdict.Verdict | None = None
    estimate_notes: list[str] = field(default_factory=list)   # where the estimate's figures came from


def build(ws: Workspace, today: dt.date | None = None) -> ReportData:
    """Gather everything the memo says, from the workspace alone."""
    cfg = decision.load_decision_config()
    answers = decision.saved_answers(ws)
    rec = decision.recommend(cfg, answers) if answers else None
    answer_rows = [{"question": q.text, "answer": q.answer(answers[q.id]).label}
                   for q in cfg.questions if q.id in answers]     # in the questionnaire's order
    book = pricing.load_pricing().with_custom(pricing.saved_custom_prices(ws), source="custom prices")
    working = ws.get_state("estimate_working")
    est, est_error, est_notes = None, None, []
    try:
        if working:
            s = scenario.Scenario.model_validate(working)
            est_notes = ["The scenario saved on the Estimate page."]
        else:
            filled = scenario.prefill_workspace(ws)      # measured as the Estimate page measures it
            s, est_notes = filled.scenario, filled.notes
        est = costs.estimate(s, book)
    except (WorkbenchError, ValueError) as exc:
        est_error = str(exc)
    runs = [r for r in evaluation.runs(ws) if r["results"]]
    comparison = evaluation.summarize(ws, runs[0]["id"]) if runs else None
    if comparison:
        comparison["run"]["state"] = runs[0]["state"]        # the verdict says when a run is not finished
    measured = evaluation.measured_figures(ws)
    vs = costs.estimate_vs_measured(est, measured) if est and measured else []
    risks = [w.message for w in (est.warnings if est else []) if w.level in ("error", "warning")]
    pairs, documents = corpus.qa_pairs(ws), corpus.documents(ws)
    report = finetune.check_workspace(ws, book=book) if pairs else None
    if report:
        risks += [f"Training data: {f.message}" for f in report.findings if f.check in (
            "sensitive_data", "too_few_examples", "few_examples", "contradictory_answers")]
    options = {o.label: key for key, o in est.options.items()} if est else {}
    for row in vs:
        est_ms, got_ms = row["latency ms (estimate)"], row["latency ms p50 (measured)"]
        comparable = verdict.latency_comparable(options.get(row["option"], ""), row["measured with"], est.scenario)
        if comparable and est_ms and got_ms and not 0.5 <= got_ms / est_ms <= 2:
            risks.append(f"{row['option']}: measured latency ({got_ms:,.0f} ms) differs from the estimate "
                         f"({est_ms:,.0f} ms) by more than a factor of two")
    found = verdict.build(cfg, rec, est, est_error, comparison, measured)
    return ReportData(workspace=ws.name, generated=(today or dt.date.today()).isoformat(), answers=answer_rows,
                      recommendation=rec, decision_cfg=cfg, estimate=est, estimate_error=est_error,
                      comparison=comparison, measured_vs_estimate=vs, risks=list(dict.fromkeys(risks)),
                      sources=book.sources(), documents=len(documents), pairs=len(pairs),
                      document_rows=[{"id": x["doc_id"], "title": x["title"], "format": x["fmt"], "tokens": x["tokens"]}
                                     for x in documents], synthetic=synthetic.describe(ws),
                      verdict=found, estimate_notes=est_notes)




def _break_even(e: costs.Estimate) -> list[str]:
    return [costs.break_even_sentence(b, e.scenario["queries_per_month"], e.scenario["months"]) for b in e.break_even]


def _num(x: Any, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _md_cell(text: Any) -> str:
    return escape_markdown(text)


def verdict_markdown(v: verdict.Verdict, heading: str = "##") -> list[str]:
    """The verdict as Markdown lines: the option and why, the three parts, agreement, what would change it."""
    out = [f"{heading} Verdict: {v.label}", "", _md_cell(v.why), "", "| evidence | points to | what it rests on |",
           "| --- | --- | --- |"]
    for part in v.parts:
        points = verdict.favours_label(part, v)
        out.append(f"| {part.title} | {points} | {_md_cell(part.text)} |")
    for title, lines in (("Where they agree", v.agree), ("Where they disagree", v.disagree),
                         ("What would change the verdict", v.would_change), ("Read with care", v.caveats)):
        if lines:
            out += ["", f"{title}:", ""] + [f"- {_md_cell(x)}" for x in lines]
    return out + [""]


def verdict_text(v: verdict.Verdict) -> str:
    """The verdict for a terminal: plain lines, the three parts first."""
    out = [f"Verdict: {v.label}", v.why, ""]
    for part in v.parts:
        out += [f"{part.title}: points to {verdict.favours_label(part, v)}", f"  {part.text}"]
    for title, lines in (("Where they agree", v.agree), ("Where they disagree", v.disagree),
                         ("What would change the verdict", v.would_change), ("Read with care", v.caveats)):
        if lines:
            out += ["", f"{title}:"] + [f"  - {x}" for x in lines]
    return "\n".join(out)


def to_markdown(d: ReportData, with_verdict: bool = True) -> str:
    """The memo as Markdown (user text kept as text: pipes escaped, no HTML added)."""
    out = ["# Decision memo: fine-tuning, RAG or a hybrid", "",
           f"Workspace `{d.workspace}` · {d.generated} · {d.documents} documents, {d.pairs} question/answer pairs", ""]
    if with_verdict and d.verdict:
        out += verdict_markdown(d.verdict)
    out += ["## The question", "", "Which approach should the team build: fine-tune a model, retrieve from its "
            "documents (RAG), or combine both? The team's answers:", ""]
    out += [f"- {_md_cell(a['question'])} **{_md_cell(a['answer'])}**" for a in d.answers] or ["- (no answers yet)"]
    out += ["", "## Recommendation", ""]
    if d.recommendation:
        r = d.recommendation
        out += [f"**{r.label}** ({r.confidence}, margin {r.margin:g} points over "
                f"{d.decision_cfg.option_label(r.runner_up)}).", "",
                "| option | score |", "| --- | --- |"]
        out += [f"| {d.decision_cfg.option_label(o)} | {s:g} |" for o, s in r.scores.items()]
        out += ["", "What drove it:", ""]
        out += [f"- {_md_cell(x.question_text)} **{_md_cell(x.answer_label)}** (+{x.contribution:g} points)"
                for x in r.drivers if x.contribution > 0][:6]
        if r.flips:
            out += ["", "What would change it:", ""]
            out += [f"- {_md_cell(decision.flip_sentence(d.decision_cfg, f))}" for f in r.flips[:3]]
    else:
        out.append("No Decide answers yet.")
    out += ["", "## Cost and latency estimate", ""]
    if d.estimate:
        e = d.estimate
        s = e.scenario
        out += [f"{s['queries_per_month']:,.0f} queries a month over {s['months']} months.", "",
                "| option | set-up | monthly | per query | total | latency |", "| --- | --- | --- | --- | --- | --- |"]
        out += [f"| {o.label} | {costs.format_usd(o.setup_cost_usd)} | {costs.format_usd(o.monthly_cost_usd)} | "
                f"{costs.format_usd(o.cost_per_query_usd)} | {costs.format_usd(o.total_cost_usd)} | {o.latency_ms['total']:,.0f} ms |"
                for o in e.options.values()]
        out += ["", "Break-even:", ""] + [f"- {x}" for x in _break_even(e)]
        if d.estimate_notes:
            out += ["", "Where the figures came from:", ""] + [f"- {_md_cell(x)}" for x in d.estimate_notes]
    else:
        out.append(f"No estimate: {d.estimate_error}")
    out += ["", "## Measured comparison", ""]
    if d.comparison:
        c = d.comparison
        out += [f"{c['run']['questions']} test questions (run `{c['run']['id']}`); 95 % bootstrap intervals; "
                "n = questions each figure rests on.", ""]
        if c["run"]["contaminated"]:
            out += [f"**Contaminated run:** {c['run']['overlap']} of {c['run']['questions']} questions overlap what "
                    f"{_md_cell(c['run']['overlap_detail']['model'])} was trained or tuned on; its fine-tuned figures "
                    "are not evidence about new questions.", ""]
        out += [f"{_md_cell(note)}" for note in c["run"]["notes"]] + ([""] if c["run"]["notes"] else [])
        out += ["| arm | F1 | 95% CI | n | abstains on unanswerable | p50 latency | cost per query | provider |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for arm in c["run"]["arms"]:
            m = c[arm]["metrics"]
            ci = f"{_num(m['f1_ci_low'], '.2f')}-{_num(m['f1_ci_high'], '.2f')}"
            out.append(f"| {c[arm]['label']} | {_num(m['f1'])} | {ci} | {m['f1_n']} | "
                       f"{_num(m['abstention_rate'], '.2f')} (n={m['abstention_rate_n']}) | "
                       f"{_num(m['latency_ms_p50'], ',.0f')} ms | {costs.format_usd(m['cost_per_query_usd'])} | "
                       f"{_md_cell(c[arm]['provider'])} |")
        if c.get("by_origin"):
            out += ["", "Generated and hand-written questions apart (score: F1 on answerable, 1 for abstaining on "
                    "unanswerable):", "", "| arm | questions | n | score | 95% CI | F1 (answerable) | F1 n |",
                    "| --- | --- | --- | --- | --- | --- | --- |"]
            for arm, by in c["by_origin"].items():
                out += [f"| {c[arm]['label']} | {origin} | {v['n']} | {_num(v['score'], '.2f')} | "
                        f"{_num(v['score_ci_low'], '.2f')}-{_num(v['score_ci_high'], '.2f')} | "
                        f"{_num(v['f1'], '.2f')} | {v['f1_n']} |" for origin, v in by.items()]
    else:
        out.append("No comparison has been run.")
    if d.synthetic:
        out += ["", f"Synthetic pairs: {_md_cell(d.synthetic)}"]
    if d.measured_vs_estimate:
        out += ["", "Estimate and measurement:", "", "| option | measured with | latency est. | latency measured | "
                "prompt tokens est. | prompt tokens measured |", "| --- | --- | --- | --- | --- | --- |"]
        out += [f"| {r['option']} | {_md_cell(r['measured with'])} | {r['latency ms (estimate)']:,.0f} ms | "
                f"{r['latency ms p50 (measured)']:,.0f} ms | "
                f"{r['prompt tokens (estimate)']:,.0f} | {r['prompt tokens (measured)']:,.0f} |"
                for r in d.measured_vs_estimate]
    out += ["", "## Risks", ""] + ([f"- {_md_cell(r)}" for r in d.risks] or ["- None found."])
    out += ["", "## Data used", "", f"{d.documents} documents and {d.pairs} question/answer pairs.", "",
            "| document | title | format | tokens |", "| --- | --- | --- | --- |"]
    out += [f"| {_md_cell(x['id'])} | {_md_cell(x['title'])} | {x['format']} | {x['tokens']:,} |" for x in d.document_rows]
    out += ["", "## Price sources", "", "| kind | id | source | as of |", "| --- | --- | --- | --- |"]
    out += [f"| {s['kind']} | {_md_cell(s['id'])} | {_md_cell(s['source'])}"
            + (f" (**not confirmed**: {_md_cell(s['unverified'])})" if s.get("unverified") else "")
            + f" | {s['as_of']} |" for s in d.sources]
    out.append("")
    return "\n".join(out)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Decision memo: {{ d.workspace }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left}
th{background:#f5f5f5}.rec{font-size:1.4rem;font-weight:600}.muted{color:#666}.risk{color:#8a4b00}
.verdict{border:2px solid #2a6;border-radius:8px;padding:.5rem 1rem;margin:1rem 0}
.parts{display:flex;flex-wrap:wrap;gap:1rem}.part{flex:1 1 280px;border:1px solid #ddd;border-radius:6px;padding:.3rem .8rem}
.points{margin:.2rem 0}.table-wrap{overflow-x:auto}
@media (max-width:600px){body{margin:1rem auto}.rec{font-size:1.15rem}td,th{padding:.2rem .3rem;font-size:.85rem}}
</style>
<meta name="viewport" content="width=device-width, initial-scale=1">
{{ plotly_js|safe }}
</head><body>
<h1>Decision memo: fine-tuning, RAG or a hybrid</h1>
<p class="muted">Workspace <code>{{ d.workspace }}</code> · {{ d.generated }} · {{ d.documents }} documents,
{{ d.pairs }} question/answer pairs</p>
{% if d.verdict %}{% set v = d.verdict %}
<section class="verdict"><h2>Verdict: {{ v.label }}</h2>
<p class="rec">{{ v.why }}</p>
<div class="parts">{% for part in v.parts %}<div class="part"><h3>{{ part.title }}</h3>
<p class="points">Points to <b>{{ favours(part, v) }}</b></p><p>{{ part.text }}</p></div>{% endfor %}</div>
{% for title, lines in [("Where they agree", v.agree), ("Where they disagree", v.disagree),
                         ("What would change the verdict", v.would_change), ("Read with care", v.caveats)] %}
{% if lines %}<h3>{{ title }}</h3><ul>{% for x in lines %}<li>{{ x }}</li>{% endfor %}</ul>{% endif %}{% endfor %}
</section>{% endif %}
<h2>The question</h2>
<p>Which approach should the team build: fine-tune a model, retrieve from its documents (RAG), or combine both?</p>
<ul>{% for a in d.answers %}<li>{{ a.question }} <b>{{ a.answer }}</b></li>{% else %}<li>No answers yet.</li>{% endfor %}</ul>
<h2>Recommendation</h2>
{% if d.recommendation %}
<p class="rec">{{ d.recommendation.label }}</p>
<p>{{ d.recommendation.confidence }} · margin {{ "%g"|format(d.recommendation.margin) }} points over
{{ d.decision_cfg.option_label(d.recommendation.runner_up) }}</p>
{{ charts_html.decision|safe }}
<ul>{% for x in d.recommendation.drivers if x.contribution > 0 %}{% if loop.index <= 6 %}
<li>{{ x.question_text }} <b>{{ x.answer_label }}</b> (+{{ "%g"|format(x.contribution) }} points)</li>{% endif %}{% endfor %}</ul>
{% if d.recommendation.flips %}<p>What would change it:</p><ul>{% for f in d.recommendation.flips[:3] %}<li>{{ flip(f) }}</li>{% endfor %}</ul>{% endif %}
{% else %}<p>No Decide answers yet.</p>{% endif %}
<h2>Cost and latency estimate</h2>
{% if d.estimate %}
<div class="table-wrap"><table><tr><th>option</th><th>set-up</th><th>monthly</th><th>per query</th><th>total</th><th>latency</th></tr>
{% for o in d.estimate.options.values() %}<tr><td>{{ o.label }}</td><td>{{ money(o.setup_cost_usd) }}</td>
<td>{{ money(o.monthly_cost_usd) }}</td><td>{{ money(o.cost_per_query_usd) }}</td><td>{{ money(o.total_cost_usd) }}</td>
<td>{{ "{:,.0f}".format(o.latency_ms.total) }} ms</td></tr>{% endfor %}</table></div>
<p>Break-even:</p><ul>{% for x in break_even %}<li>{{ x }}</li>{% endfor %}</ul>
{% if d.estimate_notes %}<p>Where the figures came from:</p><ul>{% for x in d.estimate_notes %}<li>{{ x }}</li>{% endfor %}</ul>{% endif %}
{{ charts_html.monthly|safe }}{{ charts_html.cumulative|safe }}{{ charts_html.latency|safe }}
{% else %}<p>No estimate: {{ d.estimate_error }}</p>{% endif %}
<h2>Measured comparison</h2>
{% if d.comparison %}
<p class="muted">{{ d.comparison.run.questions }} test questions (run {{ d.comparison.run.id }}); 95 % bootstrap intervals; n = questions each figure rests on.</p>
{% if d.comparison.run.contaminated %}<p><strong>Contaminated run:</strong> {{ d.comparison.run.overlap }} of {{ d.comparison.run.questions }} questions overlap what {{ d.comparison.run.overlap_detail.model }} was trained or tuned on; its fine-tuned figures are not evidence about new questions.</p>{% endif %}
{% for note in d.comparison.run.notes %}<p>{{ note }}</p>{% endfor %}
<div class="table-wrap"><table><tr><th>arm</th><th>F1</th><th>95% CI</th><th>n</th><th>abstains (unanswerable)</th><th>p50 latency</th><th>cost / query</th><th>provider</th></tr>
{% for arm in d.comparison.run.arms %}{% set m = d.comparison[arm].metrics %}
<tr><td>{{ d.comparison[arm].label }}</td><td>{{ num(m.f1) }}</td><td>{{ num(m.f1_ci_low, '.2f') }}–{{ num(m.f1_ci_high, '.2f') }}</td>
<td>{{ m.f1_n }}</td><td>{{ num(m.abstention_rate, '.2f') }} (n={{ m.abstention_rate_n }})</td><td>{{ num(m.latency_ms_p50, ',.0f') }} ms</td><td>{{ money(m.cost_per_query_usd) }}</td>
<td>{{ d.comparison[arm].provider }}</td></tr>{% endfor %}</table></div>
{{ charts_html.comparison|safe }}
{% if d.comparison.by_origin %}<h3>Generated and hand-written questions apart</h3>
<div class="table-wrap"><table><tr><th>arm</th><th>questions</th><th>n</th><th>score</th><th>F1 (answerable)</th><th>F1 n</th></tr>
{% for arm, by in d.comparison.by_origin.items() %}{% for origin, v in by.items() %}<tr><td>{{ d.comparison[arm].label }}</td>
<td>{{ origin }}</td><td>{{ v.n }}</td><td>{{ num(v.score, '.2f') }}</td><td>{{ num(v.f1, '.2f') }}</td><td>{{ v.f1_n }}</td></tr>{% endfor %}{% endfor %}</table></div>{% endif %}
{% else %}<p>No comparison has been run.</p>{% endif %}
{% if d.synthetic %}<p><strong>Synthetic pairs:</strong> {{ d.synthetic }}</p>{% endif %}
{% if d.measured_vs_estimate %}<h3>Estimate and measurement</h3>
<div class="table-wrap"><table><tr><th>option</th><th>measured with</th><th>latency est.</th><th>latency measured (p50)</th><th>prompt tokens est.</th><th>prompt tokens measured</th></tr>
{% for r in d.measured_vs_estimate %}<tr><td>{{ r.option }}</td><td>{{ r['measured with'] }}</td><td>{{ "{:,.0f}".format(r['latency ms (estimate)']) }} ms</td>
<td>{{ "{:,.0f}".format(r['latency ms p50 (measured)']) }} ms</td><td>{{ "{:,.0f}".format(r['prompt tokens (estimate)']) }}</td>
<td>{{ "{:,.0f}".format(r['prompt tokens (measured)']) }}</td></tr>{% endfor %}</table></div>{% endif %}
<h2>Risks</h2>
<ul>{% for r in d.risks %}<li class="risk">{{ r }}</li>{% else %}<li>None found.</li>{% endfor %}</ul>
<h2>Data used</h2>
<p>{{ d.documents }} documents and {{ d.pairs }} question/answer pairs.</p>
<div class="table-wrap"><table><tr><th>document</th><th>title</th><th>format</th><th>tokens</th></tr>
{% for x in d.document_rows %}<tr><td>{{ x.id }}</td><td>{{ x.title }}</td><td>{{ x.format }}</td>
<td>{{ "{:,}".format(x.tokens) }}</td></tr>{% endfor %}</table></div>
<h2>Price sources</h2>
<div class="table-wrap"><table><tr><th>kind</th><th>id</th><th>source</th><th>as of</th></tr>
{% for s in d.sources %}<tr><td>{{ s.kind }}</td><td>{{ s.id }}</td><td>{{ s.source }}{% if s.unverified %} (<strong>not confirmed</strong>: {{ s.unverified }}){% endif %}</td><td>{{ s.as_of }}</td></tr>{% endfor %}</table></div>
</body></html>
"""


def to_html(d: ReportData) -> str:
    """One self-contained HTML file: plotly's JavaScript inlined once, every user text escaped."""
    import jinja2
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    def fig(f: Any) -> str:
        return pio.to_html(f, full_html=False, include_plotlyjs=False, config={"displaylogo": False})

    figures: dict[str, str] = {}
    if d.recommendation:
        figures["decision"] = fig(charts.decision_by_group(d.decision_cfg, d.recommendation))
    if d.estimate:
        figures["monthly"] = fig(charts.monthly_by_component(d.estimate))
        figures["cumulative"] = fig(charts.cumulative_cost(d.estimate))
        figures["latency"] = fig(charts.latency_by_stage(d.estimate))
    if d.comparison:
        figures["comparison"] = fig(charts.metric_bars(d.comparison, d.comparison["run"]["arms"], "f1"))
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    template = env.from_string(_TEMPLATE)
    return template.render(d=d, charts_html=_Figures(figures), money=costs.format_usd, num=_num,
                           favours=verdict.favours_label, flip=lambda f: decision.flip_sentence(d.decision_cfg, f),
                           break_even=_break_even(d.estimate) if d.estimate else [],
                           plotly_js=f'<script type="text/javascript">{get_plotlyjs()}</script>')


class _Figures(dict):
    def __getattr__(self, name: str) -> str:
        return self.get(name, "")
