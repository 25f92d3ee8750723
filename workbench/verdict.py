"""One verdict from three kinds of evidence: fit (Decide), cost and latency (Estimate), measured quality (Compare).

Fit decides unless it is narrow: the team's requirements are what the other two are weighed against. Measured
quality overrules a narrow fit only when it comes from real models on questions they were not trained on and
its paired difference excludes zero; offline stand-ins and tiny local models are named and only indicate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import costs, decision
from .evaluation import ESTIMATE_OPTION, FROZEN
from .metrics import MIN_N

PARTS = ("Fit", "Cost and latency", "Measured quality")
ARM_OF_OPTION = {option: arm for arm, option in ESTIMATE_OPTION.items()}


@dataclass(frozen=True)
class Part:
    """One kind of evidence: which option it favours (None when it cannot say) and why, in sentences."""

    title: str
    favours: str | None
    text: str
    counts: bool = True          # False: shown, but not used to choose (stand-ins, a contaminated run)


@dataclass
class Verdict:
    option: str | None
    label: str
    why: str
    parts: list[Part]
    agree: list[str] = field(default_factory=list)
    disagree: list[str] = field(default_factory=list)
    would_change: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    option_labels: dict[str, str] = field(default_factory=dict)


def stand_in(provider: str) -> str | None:
    """What a provider label says it is when it is no production model: an offline stand-in or a tiny local model."""
    if "stand-in" in provider:
        return "an offline stand-in"
    if "tiny model" in provider or "SmolLM2" in provider:
        return "a tiny local model"
    return None


def latency_comparable(option: str, provider: str, scenario: Mapping[str, Any]) -> bool:
    """Whether a latency measured with `provider` can be set against the estimate: the same hosted model."""
    if not provider or stand_in(provider) or "local" in provider:
        return False
    model = provider.split(" (")[0]
    estimated = {"rag": [scenario["rag"]["model"]], "fine_tuning": [scenario["fine_tuning"]["model"]]}
    estimated["hybrid_sequential"] = estimated["hybrid_routing"] = estimated["rag"] + estimated["fine_tuning"]
    # the same id, or a fine-tuned one made from it (ft:gpt-4o-mini-2024-07-18:org::id for gpt-4o-mini)
    return any(m and (model == m or model.startswith((f"ft:{m}:", f"ft:{m}-"))) for m in estimated.get(option, []))


def _label(option: str | None, cfg: decision.DecisionConfig) -> str:
    return cfg.option_label(option) if option else "no option yet"


def _fit(rec: decision.Recommendation | None, cfg: decision.DecisionConfig) -> Part:
    if rec is None:
        return Part("Fit", None, "No Decide answers yet: answer the questions on the Decide page.")
    answered = len(cfg.questions) - len(rec.unanswered)
    if rec.confidence == "tie":
        return Part("Fit", None, f"Decide ties {rec.label} and {cfg.option_label(rec.runner_up)} on "
                    f"{answered} of {len(cfg.questions)} answers.")
    reasons = [f"“{d.answer_label}” to “{d.question_text}” (+{d.contribution:g})" for d in rec.drivers
               if d.contribution > 0][:3]
    text = (f"Decide recommends {rec.label} ({rec.confidence}, {rec.margin:g} points ahead of "
            f"{cfg.option_label(rec.runner_up)}) on {answered} of {len(cfg.questions)} answers.")
    if reasons:
        text += " Strongest reasons: " + "; ".join(reasons) + "."
    return Part("Fit", rec.recommendation, text)


def _measured_latency(est: costs.Estimate, measured: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Sentences for measured latencies that compare with the estimate, and caveats for those that do not."""
    used, not_comparable = [], []
    for option, m in measured.items():
        if option not in est.options or m.get("latency_ms_p50") is None:
            continue
        provider = m.get("provider", "")
        figure = f"{est.options[option].label} {m['latency_ms_p50']:,.0f} ms p50 with {provider}"
        if latency_comparable(option, provider, est.scenario):
            used.append(f"{figure} on {m.get('questions', '?')} questions (estimate "
                        f"{est.options[option].latency_ms['total']:,.0f} ms)")
        else:
            not_comparable.append(figure)
    caveats = []
    if not_comparable:
        caveats.append("Latencies measured in Compare are not set against the estimate: they come from other "
                       "models than the ones priced (" + "; ".join(not_comparable) + ").")
    return used, caveats


def _cost(est: costs.Estimate | None, error: str | None, measured: Mapping[str, Mapping[str, Any]],
          cfg: decision.DecisionConfig) -> tuple[Part, list[str]]:
    if est is None:
        return Part("Cost and latency", None, f"No estimate: {error or 'none saved'}."), []
    by_cost = sorted(est.options, key=lambda o: est.options[o].total_cost_usd)
    cheapest, second = by_cost[0], by_cost[1]
    fastest = min(est.options, key=lambda o: est.options[o].latency_ms["total"])
    s = est.scenario
    a, b = est.options[cheapest], est.options[second]
    text = (f"Over {s['months']} months at {s['queries_per_month']:,.0f} queries a month, {a.label} costs "
            f"{costs.format_usd(a.total_cost_usd)} in total against {costs.format_usd(b.total_cost_usd)} for "
            f"{b.label}, the next cheapest. {est.options[fastest].label} answers fastest "
            f"({est.options[fastest].latency_ms['total']:,.0f} ms estimated).")
    used, caveats = _measured_latency(est, measured)
    if used:
        text += " Measured: " + "; ".join(used) + "."
    return Part("Cost and latency", cheapest, text), caveats


def _comparison(summary: Mapping[str, Any], a: str, b: str) -> dict[str, Any] | None:
    for c in summary.get("comparisons", []):
        if {c["a"], c["b"]} == {a, b}:
            if c["a"] == a:
                return c
            return {**c, "a": a, "b": b, "difference": -c["difference"], "ci_low": -c["ci_high"],
                    "ci_high": -c["ci_low"]}
    return None


def _interval(low: float | None, high: float | None, fmt: str = ".2f") -> str:
    """A 95 % interval, or why there is none (fewer questions than an interval needs)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"(no interval: fewer than {MIN_N} questions)"
    return f"[{low:{fmt}}, {high:{fmt}}]"


def _arm_figure(summary: Mapping[str, Any], arm: str) -> str:
    m = summary[arm]["metrics"]
    if m.get("f1") is None:
        return f"{summary[arm]['label']} F1 n/a (n = 0)"
    return (f"{summary[arm]['label']} F1 {m['f1']:.2f} {_interval(m['f1_ci_low'], m['f1_ci_high'])} "
            f"(n = {m['f1_n']})")


def _gap(c: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    return (f"{summary[c['a']]['label']} − {summary[c['b']]['label']}: {c['difference']:+.2f} "
            f"{_interval(c['ci_low'], c['ci_high'], '+.2f')} on {c['questions']} questions")


def _quality(summary: Mapping[str, Any] | None, fit: str | None) -> tuple[Part, dict[str, Any] | None, list[str]]:
    """Quality part, the paired comparison it rests on (best option arm against its rival), and caveats."""
    if not summary:
        return Part("Measured quality", None, "No comparison has been run: run Compare on the test questions."), None, []
    run = summary["run"]
    arms = [a for a in run["arms"] if a in ESTIMATE_OPTION or a == FROZEN]
    option_of = {a: ESTIMATE_OPTION.get(a, "fine_tuning") for a in arms}
    scored = [a for a in arms if summary[a]["metrics"].get("f1") is not None]
    if len(scored) < 2:
        return Part("Measured quality", None, f"The comparison (run {run['id']}, {run['questions']} questions) "
                    "has fewer than two of the RAG and fine-tuned arms with answers."), None, []
    best = max(scored, key=lambda a: summary[a]["metrics"]["f1"])
    fit_arm = ARM_OF_OPTION.get(fit) if fit else None
    rival = fit_arm if fit_arm in scored and fit_arm != best else \
        max((a for a in scored if a != best), key=lambda a: summary[a]["metrics"]["f1"])
    c = _comparison(summary, best, rival)
    figures = "; ".join(_arm_figure(summary, a) for a in scored)
    clean = "no model was trained or tuned on" if not run["contaminated"] else "some of which a model was trained on"
    text = f"On {run['questions']} test questions {clean}: {figures}."
    if run.get("state") not in (None, "complete"):
        text += f" The run is {run['state']}: not every question has its answers yet."
    caveats = []
    named = list(dict.fromkeys(summary[a]["provider"] for a in scored if stand_in(summary[a]["provider"] or "")))
    counts = not named and not run["contaminated"]
    if named:
        caveats.append("Measured quality comes from offline stand-ins or tiny local models (" + "; ".join(named)
                       + "): it shows the pipeline works on your data, not how production models would score, so "
                       "it does not choose the option.")
    if run["contaminated"]:
        caveats.append(f"{run['overlap']} of {run['questions']} questions overlap what the fine-tuned model was "
                       "trained or tuned on: its figures are not evidence about new questions.")
    favours = None
    if c and c["questions"]:
        text += f" Paired difference in score (F1 on answerable, 1 for abstaining on unanswerable), {_gap(c, summary)}"
        if c["significant"]:
            favours = option_of[best]
            text += f": {summary[best]['label']} is ahead."
        else:
            text += ": the interval includes zero, so no arm is measurably ahead."
    return Part("Measured quality", favours, text, counts=counts), c, caveats


def _questions_needed(c: Mapping[str, Any]) -> int | None:
    """Questions for a gap of this size to clear zero if the spread per question stays as measured."""
    half = (c["ci_high"] - c["ci_low"]) / 2
    if not c["questions"] or not c["difference"] or math.isnan(half) or half <= 0:
        return None
    return math.ceil(c["questions"] * (half / abs(c["difference"])) ** 2)


def build(cfg: decision.DecisionConfig, rec: decision.Recommendation | None, est: costs.Estimate | None,
          est_error: str | None, summary: Mapping[str, Any] | None,
          measured: Mapping[str, Mapping[str, Any]] | None = None) -> Verdict:
    """The recommended option and why, from the three parts, with where they agree, disagree and what would change it."""
    fit = _fit(rec, cfg)
    cost, cost_caveats = _cost(est, est_error, measured or {}, cfg)
    quality, gap, quality_caveats = _quality(summary, fit.favours)
    if rec is None:
        option, basis = None, ("the Decide questions are not answered, and the fit is what cost and measured "
                               "quality are weighed against")
    elif fit.favours and rec.confidence in ("clear", "moderate"):
        option, basis = fit.favours, "the fit is " + rec.confidence
    elif quality.favours and quality.counts:
        option, basis = quality.favours, "measured quality decides where the fit is " + (rec.confidence if rec else "unknown")
    elif rec and rec.confidence == "tie" and cost.favours in (rec.recommendation, rec.runner_up):
        option, basis = cost.favours, "cost breaks the tie in fit"
    elif fit.favours:
        option, basis = fit.favours, "the fit is narrow"
    else:
        option, basis = None, "there is no evidence yet"
    label = _label(option, cfg)
    agree, disagree = [], []
    for part in (fit, cost, quality):
        if part.favours is None:
            continue
        note = "" if part.counts else " (indicative only)"
        if part.favours == option:
            agree.append(f"{part.title} points to {label}{note}.")
        else:
            disagree.append(f"{part.title} points to {_label(part.favours, cfg)}{note}.")
    silent = [p.title for p in (fit, cost, quality) if p.favours is None]
    if silent:
        disagree.append(", ".join(silent) + (" does" if len(silent) == 1 else " do") + " not favour an option yet.")
    would_change = [decision.flip_sentence(cfg, f) for f in (rec.flips[:2] if rec else [])]
    if rec and not rec.flips:
        would_change.append("No change of up to three Decide answers would change the fit.")
    if est is not None and option:
        s = est.scenario
        rivals = {o for p in (fit, cost, quality) if p.favours and p.favours != option for o in [p.favours]}
        rivals |= {"rag" if option != "rag" else "fine_tuning"}
        for b in est.break_even:
            if option in (b.a, b.b) and ({b.a, b.b} - {option}) & rivals:
                would_change.append(costs.break_even_sentence(b, s["queries_per_month"], s["months"]))
    if gap:
        needed = _questions_needed(gap)
        a, b = summary[gap["a"]]["label"], summary[gap["b"]]["label"]
        if gap["significant"]:
            would_change.append(f"The measured gap ({_gap(gap, summary)}) would have to close or reverse on "
                                "production models for the quality evidence to change.")
        elif needed:
            would_change.append(f"A quality gap whose interval excludes zero would settle {a} against {b}: at the "
                                f"gap and spread measured, about {needed:,} questions would be needed "
                                f"(now {gap['questions']}).")
    why = (f"{label}: {basis}." if option else "No verdict yet: " + basis + ".")
    if not option and cost.favours:
        why += f" On cost alone, {_label(cost.favours, cfg)} is the cheapest in the scenario."
    if option and agree:
        why += f" {len(agree)} of {len(PARTS)} parts agree."
    return Verdict(option, label, why, [fit, cost, quality], agree, disagree, would_change,
                   cost_caveats + quality_caveats, {o.id: o.label for o in cfg.options})



def favours_label(part: Part, v: Verdict) -> str:
    """What a part points to, as the verdict's table shows it."""
    if part.favours is None:
        return "no option yet"
    return v.option_labels.get(part.favours, part.favours) + ("" if part.counts else " (indicative only)")
