"""The verdict: one recommended option from fit, cost and latency, and measured quality, with its reasons."""
from workbench import costs, decision, pricing, scenario, verdict
from workbench.costs import BreakEven

CFG = decision.load_decision_config()
EXTRACTIVE = "Extractive answerer (offline stand-in, not an LLM)"
SMOL = "SmolLM2-135M-Instruct, local (tiny model, demo quality)"


def _summary(rag_f1, ft_f1, diff, low, high, providers=(EXTRACTIVE, SMOL), n=60, contaminated=False):
    arm = lambda label, provider, f1: {"label": label, "provider": provider,  # noqa: E731
                                       "metrics": {"f1": f1, "f1_ci_low": f1 - 0.05, "f1_ci_high": f1 + 0.05, "f1_n": n}}
    return {"run": {"id": "eval-1", "questions": n, "arms": ["rag", "ft"], "contaminated": contaminated, "overlap": 0},
            "rag": arm("RAG", providers[0], rag_f1), "ft": arm("Fine-tuned", providers[1], ft_f1),
            "comparisons": [{"a": "rag", "b": "ft", "metric": "score", "difference": diff, "ci_low": low,
                             "ci_high": high, "significant": low > 0 or high < 0, "questions": n}]}


def _estimate():
    return costs.estimate(scenario.default_scenario(), pricing.load_pricing())


def test_clear_fit_decides_and_stand_ins_only_indicate():
    rec = decision.recommend(CFG, CFG.preset("support_bot").answers)          # RAG, clear by 10.5
    summary = _summary(0.20, 0.45, -0.25, -0.35, -0.15)                      # stand-ins favour fine-tuning
    v = verdict.build(CFG, rec, _estimate(), None, summary)
    assert (v.option, v.label) == ("rag", "RAG")
    assert [p.title for p in v.parts] == ["Fit", "Cost and latency", "Measured quality"]
    fit, cost, quality = v.parts
    assert fit.favours == "rag" and "clear, 10.5 points ahead" in fit.text
    # default scenario: RAG $951.93 over 12 months against fine-tuning on an L4 at $7,008.33
    assert cost.favours == "rag" and "RAG costs $951.93 in total against $7,008.33 for Fine-tuning" in cost.text
    assert quality.favours == "fine_tuning" and not quality.counts
    assert "Fine-tuned − RAG: +0.25 [+0.15, +0.35] on 60 questions: Fine-tuned is ahead" in quality.text
    assert v.agree == ["Fit points to RAG.", "Cost and latency points to RAG."]
    assert v.disagree == ["Measured quality points to Fine-tuning (indicative only)."]
    assert verdict.favours_label(quality, v) == "Fine-tuning (indicative only)"
    assert any(EXTRACTIVE in c and SMOL in c and "does not choose the option" in c for c in v.caveats)
    # the default scenario's fine-tuning/RAG totals meet at about 1.28 million queries a month
    assert any(x.startswith("Fine-tuning would cost less than RAG over 12 months above 1,278,")
               and x.endswith("queries a month (now 100,000).") for x in v.would_change)


def test_real_models_settle_a_narrow_fit():
    rec = decision.recommend(CFG, {"task_specialization": "narrow"})
    assert (rec.recommendation, rec.confidence) == ("fine_tuning", "narrow")
    hosted = ("gpt-4o-mini (OpenAI-compatible)", "ft:gpt-4o-mini:acme::x1 (OpenAI-compatible)")
    v = verdict.build(CFG, rec, _estimate(), None, _summary(0.5, 0.38, 0.12, 0.05, 0.19, providers=hosted))
    assert v.option == "rag" and v.parts[2].counts
    assert v.why == "RAG: measured quality decides where the fit is narrow. 2 of 3 parts agree."
    assert v.disagree == ["Fit points to Fine-tuning."]
    assert not v.caveats
    assert any(x.startswith("Answering “") and "would make RAG the recommendation" in x
               for x in v.would_change)                                        # Decide's flips, in words


def test_an_inconclusive_gap_says_how_many_questions_would_settle_it():
    rec = decision.recommend(CFG, CFG.preset("support_bot").answers)
    v = verdict.build(CFG, rec, _estimate(), None, _summary(0.30, 0.26, 0.04, -0.04, 0.12))
    assert v.parts[2].favours is None and "the interval includes zero" in v.parts[2].text
    # half-width 0.08 against a gap of 0.04: (0.08 / 0.04)^2 x 60 questions = 240
    assert any("about 240 questions would be needed (now 60)" in x for x in v.would_change)


def test_nothing_yet_and_no_answers():
    v = verdict.build(CFG, None, None, "no scenario", None)
    assert v.option is None and v.why.startswith("No verdict yet")
    assert all(p.favours is None for p in v.parts)
    v = verdict.build(CFG, None, _estimate(), None, None)       # cost alone does not make a verdict
    assert v.option is None and v.why.startswith("No verdict yet: the Decide questions are not answered")
    assert v.why.endswith("On cost alone, RAG is the cheapest in the scenario.")


def test_small_and_contaminated_runs_are_said_as_they_are():
    rec = decision.recommend(CFG, CFG.preset("support_bot").answers)
    small = _summary(0.4, 0.2, 0.2, float("nan"), float("nan"), n=3)
    for arm in ("rag", "ft"):
        small[arm]["metrics"].update(f1_ci_low=None, f1_ci_high=None)    # below metrics.MIN_N: no interval
    small["run"]["state"] = "stopped"
    text = verdict.build(CFG, rec, _estimate(), None, small).parts[2].text
    assert "RAG F1 0.40 (no interval: fewer than 5 questions) (n = 3)" in text
    assert "+0.20 (no interval: fewer than 5 questions) on 3 questions" in text
    assert "The run is stopped: not every question has its answers yet." in text
    dirty = verdict.build(CFG, rec, _estimate(), None, _summary(0.4, 0.2, 0.2, 0.1, 0.3, contaminated=True))
    assert "some of which a model was trained on" in dirty.parts[2].text and not dirty.parts[2].counts


def test_break_even_sentences():
    month = BreakEven("fine_tuning", "rag", cheaper_at_start="rag", cheaper_at_end="fine_tuning", month=3,
                      monthly_queries=40_000.0)
    assert costs.break_even_sentence(month, 100_000, 12) == \
        "Fine-tuning becomes cheaper than RAG from month 3 at 100,000 queries a month."
    volume = BreakEven("fine_tuning", "rag", "rag", "rag", None, 1_278_656.0)
    assert costs.break_even_sentence(volume, 100_000, 12) == \
        "Fine-tuning would cost less than RAG over 12 months above 1,278,656 queries a month (now 100,000)."
    never = BreakEven("fine_tuning", "hybrid_sequential", "fine_tuning", "fine_tuning", None, None)
    assert costs.break_even_sentence(never, 100_000, 12) == \
        "Fine-tuning stays cheaper than Hybrid (fine-tune, then RAG) at any volume over 12 months."


def test_latency_is_compared_only_for_the_model_estimated():
    s = scenario.default_scenario().model_dump()        # RAG on gpt-4o-mini, fine-tuning llama-3.1-8b-lora-l4
    assert verdict.latency_comparable("rag", "gpt-4o-mini (OpenAI-compatible)", s)
    assert not verdict.latency_comparable("rag", SMOL, s)
    assert not verdict.latency_comparable("rag", EXTRACTIVE, s)
    assert not verdict.latency_comparable("fine_tuning", "gpt-4o-mini (OpenAI-compatible)", s)
    assert not verdict.latency_comparable("rag", "gpt-4o-mini-2024-07-18-nano (OpenAI-compatible)", s)
    s["fine_tuning"]["model"] = "gpt-4o-mini"
    assert verdict.latency_comparable("fine_tuning", "ft:gpt-4o-mini-2024-07-18:acme::x1 (OpenAI-compatible)", s)
    assert not verdict.latency_comparable("rag", "gpt-4o (OpenAI-compatible)", {**s, "rag": {"model": "gpt-4o-mini"}})
    assert verdict.stand_in("LoRA ft-1 of SmolLM2-135M-Instruct, local (transformers + peft)") == "a tiny local model"
