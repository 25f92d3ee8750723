"""The Estimate page, clicked through with AppTest."""
import datetime as dt

import pytest

from workbench import decision, pricing, scenario, workspace

TABS = ["Monthly cost", "Break-even", "Cost per query", "Latency", "Sensitivity", "Sweep", "Scenarios", "Prices"]


@pytest.fixture
def estimate_page(app_test):
    def open_page():
        at = app_test("blank").run()  # an empty workspace: the configured defaults, nothing measured
        at.switch_page("pages/estimate.py").run()
        assert not at.exception
        return at
    return open_page


def summary(at):
    df = at.dataframe[0].value
    return {row["option"]: row for _, row in df.iterrows()}


def captions(at):
    return [c.value.replace("\\$", "$") for c in at.caption]   # as rendered: \$ is a literal dollar sign


def open_tab(at, name):
    at.session_state["est_tab"] = name
    return at.run()


def test_defaults_worked_by_hand(estimate_page):
    at = estimate_page()
    at.date_input(key="est:start_date").set_value(dt.date(2026, 11, 29)).run()
    rows = summary(at)
    # The default fine-tunes a LoRA served on one self-hosted L4 (it outlives the horizon): 730 h x $0.80 = $584
    # a month, plus 4 retrains a year at $0.80 / 12 each (test_costs works it through).
    assert (rows["Fine-tuning"]["monthly"], rows["Fine-tuning"]["total"]) == ("$584.02", "$7,008.33")
    assert rows["RAG"]["monthly"] == "$79.32"                 # $42.72 + $0.10 + $0.004 + $36.50
    assert rows["RAG"]["per query"] == "$0.00079"              # $79.324 / 100,000: significant figures, not $0.00
    assert not at.warning and not at.error                    # nothing in the default scenario retires
    assert at.selectbox(key="est_ft_provider").value == "self-hosted"
    # 500 x 400 x 3 = 600,000 tokens at 2,000 tokens/s = 300 s of an $0.80/h L4 = $0.0667.
    assert {m.label: m.value for m in at.metric}["One training run"] == "$0.067"
    assert any(c.startswith("One training run: 500 examples x 400 tokens x 3 epochs = 600,000 tokens, about 5 "
                            "minutes at 2,000 training tokens/s") for c in captions(at))
    # No pairs in the workspace: the page says fine-tuning is costed at the default 500 examples.
    assert "↳ default; the workspace has no question/answer pairs yet" in captions(at)
    assert ("Fine-tuning is costed at 500 training examples (default): the workspace has no question/answer "
            "pairs yet.") in captions(at)
    # Tables that fit: the cost breakdown has its largest components first, as a table that wraps its headers.
    comp = at.table[0].value
    assert list(comp.columns) == ["option", "hosting", "vector store", "inference", "query embedding", "retraining",
                                  "re-embedding"]
    assert comp.set_index("option").loc["RAG", "vector store"] == "$36.50"
    # Short tab titles (the strip fits at 1400 px), and only the open tab is drawn: one chart.
    assert [t.label for t in at.tabs] == TABS
    assert len(at.get("plotly_chart")) == 1
    # Every table downloads, the tabs' closed or not.
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Summary (CSV)", "Tornado (CSV)", "Sweep (CSV)", "Side by side (CSV)", "Price sources (CSV)"} <= set(labels)


def test_choosing_openai_warns_and_names_the_cheapest_lasting_alternative(estimate_page):
    at = estimate_page()
    at.date_input(key="est:start_date").set_value(dt.date(2026, 11, 29)).run()
    assert at.selectbox(key="est_ft_provider").format_func("openai") == "OpenAI (jobs end 2027-01-06)"
    at.selectbox(key="est_ft_provider").set_value("openai").run()
    assert at.selectbox(key="est:fine_tuning.model").value == "gpt-4o-mini"       # the provider's first model
    assert summary(at)["Fine-tuning"]["total"] == "$297.00"
    warnings = [w.value.replace("\\$", "$") for w in at.warning]
    assert any("No new fine-tuning jobs" in w for w in warnings)
    assert any("stop serving on 2027-01-14" in w for w in warnings)
    assert any("Cheapest fine-tuning that outlives the 12-month horizon" in w and "llama-3.1-8b-lora-l4" in w
               and "$7,008.33" in w and "against $297.00" in w for w in warnings)
    # A provider whose prices could not be confirmed says so beside the choice and in the estimate.
    at.selectbox(key="est_ft_provider").set_value("fireworks").run()
    assert at.selectbox(key="est:fine_tuning.model").value == "fireworks-llama-3.1-8b-lora"
    assert any("Prices not confirmed" in c.value and "undated" in c.value for c in at.caption)
    assert any("prices not confirmed" in i.value for i in at.info)
    assert not at.warning


def test_the_local_lora_uses_the_training_speed_measured_here(estimate_page):
    from workbench import finetune

    ws = workspace.open_workspace("blank", create=True)
    finetune._save_job(ws, {"id": "lora-timed", "provider": "lora", "base_model": "SmolLM2", "state": "succeeded",
                            "fine_tuned_model": "lora-timed", "hyperparameters": {}, "metrics": [
                                {"step": 1, "train_loss": 2.9, "valid_loss": 2.7, "seconds": 38.0},
                                {"step": 2, "train_loss": 2.6, "valid_loss": 2.5, "seconds": 42.0}],
                            "events": [{"created_at": 0, "level": "info", "message": "done", "data": {
                                "train_tokens": 8000, "train_examples": 166, "seconds_per_epoch": 40.0}}]})
    at = estimate_page()
    at.selectbox(key="est_ft_provider").set_value("local").run()
    at.number_input(key="est:fine_tuning.tokens_per_example").set_value(200.0).run()
    at.button(key="est_measured_lora").click().run()
    # 8,000 tokens in 40 s = 200 tokens/s; 500 examples x 200 tokens x 3 epochs = 300,000 tokens = 1,500 s.
    saved = pricing.saved_custom_prices(ws)["models"][0]
    assert saved["id"] == "smollm2-135m-lora-local" and saved["fine_tuning"]["training_tokens_per_s"] == 200.0
    assert "LoRA job lora-timed, 40 s per epoch on 166 examples" in saved["source"]
    assert any("200 training tokens/s" in c for c in captions(at))
    # And the run's time follows it: 300,000 tokens / 200 tokens/s = 1,500 s = 25 minutes.
    assert any(c.startswith("One training run: 500 examples x 200 tokens x 3 epochs = 300,000 tokens, about 25 "
                            "minutes at 200 training tokens/s") for c in captions(at))


def test_moving_a_slider_updates_the_estimate_and_is_kept(estimate_page):
    at = estimate_page()
    at.slider(key="est:rag.top_k").set_value(8).run()
    # Inference: 100k x ((200 + 8 x 512) x $0.15 + 150 x $0.60)/1M = $73.44; plus $0.10 + $0.004 + $36.50.
    assert summary(at)["RAG"]["monthly"] == "$110.04"
    saved = workspace.open_workspace("blank").get_state("estimate_working")
    assert saved["rag"]["top_k"] == 8
    # Going to another page and back keeps the inputs.
    at.switch_page("pages/decide.py").run()
    at.switch_page("pages/estimate.py").run()
    assert at.slider(key="est:rag.top_k").value == 8


def test_a_rerun_draws_only_what_changed_and_what_is_seen(estimate_page, monkeypatch):
    from workbench import charts

    drawn = []
    for name in ("monthly_by_component", "latency_by_stage", "tornado_chart"):
        real = getattr(charts, name)
        monkeypatch.setattr(charts, name, lambda *a, _real=real, _name=name, **k: drawn.append(_name) or _real(*a, **k))
    at = estimate_page()
    at.number_input(key="est:queries_per_month").set_value(123_457.0).run()   # a scenario no other test priced
    at.slider(key="est:rag.top_k").set_value(5).run()
    assert drawn == ["monthly_by_component", "monthly_by_component"]          # closed tabs draw nothing
    at.run()
    at.slider(key="est:rag.top_k").set_value(4).run()                        # back to a scenario already drawn
    assert drawn == ["monthly_by_component", "monthly_by_component"]
    open_tab(at, "Latency").run()
    assert drawn[2:] == ["latency_by_stage"]                                  # drawn once, when it is seen


def test_prefilled_from_decide_answers(app_test):
    ws = workspace.open_workspace("blank", create=True)
    cfg = decision.load_decision_config()
    answers = {"query_volume": "high", "training_examples": "thousands"}
    decision.save_decision(ws, answers, decision.recommend(cfg, answers))
    at = app_test("blank").run()
    at.switch_page("pages/estimate.py").run()
    assert at.number_input(key="est:queries_per_month").value == 2_000_000
    assert at.number_input(key="est:fine_tuning.training_examples").value == 3000
    assert "↳ from your Decide answer “Over 1 million” to “How many queries a month do you expect?”" in captions(at)
    assert "Queries per month: 2,000,000 (from your Decide answer “Over 1 million” to “How many queries a month do you expect?”)" in captions(at)


def test_the_sample_is_prefilled_where_its_data_is_representative_and_costs_one_training_figure(app_test):
    from workbench import corpus, sample, splits

    ws = sample.open_sample()
    stats = corpus.data_stats(ws)
    at = app_test().run()
    at.switch_page("pages/estimate.py").run()
    # Measured on the workspace: the answered pairs and the corpus; kept: the terse answers' sizes.
    assert at.number_input(key="est:fine_tuning.training_examples").value == stats.training_examples == 245
    assert at.number_input(key="est:rag.corpus_tokens").value == stats.corpus_tokens == 14_253
    assert at.number_input(key="est:output_tokens").value == 150
    assert at.number_input(key="est:fine_tuning.tokens_per_example").value == 400
    assert at.checkbox(key="est:rag.in_process_index").value
    shown = captions(at)
    assert "↳ measured from the workspace's 245 answered pairs" in shown
    assert ("↳ default: not the measured 8; reference answers under 40 tokens are terser than what a model "
            "writes") in shown
    assert "↳ a 14,253-token corpus fits in the app's own process: no machine of its own" in shown
    # RAG without a FAISS machine: $42.72 inference + $0.10 query embedding + a fraction of a cent re-embedding.
    assert summary(at)["RAG"]["monthly"] == "$42.82"
    # One training figure on the workspace's own examples, the same on the Estimate and the Fine-tune page:
    # 245 chat examples, 32,958 tokens with the system message x 3 epochs, at $3/1M with gpt-4o-mini.
    at.selectbox(key="est_ft_provider").set_value("openai").run()
    own = ("On this workspace's own examples, all 245 answered pairs (no split yet), as the Fine-tune page "
           "previews them: 3 epochs, 32,958 tokens, $0.099 with gpt-4o-mini.")
    assert own in captions(at)
    at.switch_page("pages/finetune.py").run()
    assert {m.label: m.value for m in at.metric}["Training cost"] == "$0.099"
    # 32,958 / (245 x 3) = 44.8 tokens an example
    assert any(c.startswith("All 245 answered pairs (no split yet), 45 tokens each on average, x 3 epochs = "
                            "32,958 billed tokens in total")
               for c in captions(at))
    # After the split both count the train side, and say so.
    splits.make_split(ws)
    at.run()
    basis = next(c for c in captions(at) if c.startswith("Train side of the split:"))
    cost = {m.label: m.value for m in at.metric}["Training cost"]
    at.switch_page("pages/estimate.py").run()
    assert any(basis.split(", ")[0].lower() in c and c.endswith(f"{cost} with gpt-4o-mini.") for c in captions(at))


def test_save_and_compare_scenarios(estimate_page):
    at = estimate_page()
    at.selectbox(key="est_ft_provider").set_value("openai").run()   # per-token prices, worked by hand below
    at.text_input(key="est:name").set_value("Pilot")
    open_tab(at, "Scenarios")
    next(b for b in at.button if b.label == "Save scenario").click().run()
    at.text_input(key="est:name").set_value("Scale")
    at.number_input(key="est:queries_per_month").set_value(5_000_000).run()
    next(b for b in at.button if b.label == "Save scenario").click().run()
    ws = workspace.open_workspace("blank")
    assert sorted(scenario.saved_scenarios(ws)) == ["Pilot", "Scale"]
    at.selectbox(key="est_cmp_left").set_value("Pilot")
    at.selectbox(key="est_cmp_right").set_value("Scale").run()
    side = next(t.value for t in at.table if "Pilot: monthly" in t.value.columns)
    ft = side[side["option"] == "Fine-tuning"].iloc[0]
    assert ft["Pilot: monthly"] == "$24.60"
    assert ft["Scale: monthly"] == "$1,200.60"                           # 5,000,000 x $0.00024 + $0.60
    # Loading a saved scenario puts its inputs back.
    at.selectbox(key="est_pick").set_value("Pilot").run()
    next(b for b in at.button if b.label == "Load").click().run()
    assert at.number_input(key="est:queries_per_month").value == 100_000


def test_custom_price_then_use_it(estimate_page):
    at = estimate_page()
    form_inputs = [t for t in at.text_input if t.label == "Model id"]
    form_inputs[0].set_value("our-llm")
    next(n for n in at.number_input if n.label == "Input price").set_value(1.0)
    next(n for n in at.number_input if n.label == "Output price").set_value(2.0)
    next(b for b in at.button if b.label == "Save price").click().run()
    assert not at.exception
    ws = workspace.open_workspace("blank")
    assert pricing.saved_custom_prices(ws)["models"][0]["id"] == "our-llm"
    at.selectbox(key="est:rag.model").set_value("our-llm").run()
    # 100k x (2,248 x $1 + 150 x $2)/1M = $254.80 of inference, plus $0.10 + $0.004 + $36.50.
    assert summary(at)["RAG"]["monthly"] == "$291.40"


def test_unknown_model_is_explained_not_a_crash(app_test):
    ws = workspace.open_workspace("blank", create=True)
    s = scenario.default_scenario().model_copy(update={"rag": scenario.RagScenario(model="mystery-llm")})
    ws.set_state("estimate_working", s.model_dump(mode="json", exclude_none=True))
    at = app_test("blank").run()
    at.switch_page("pages/estimate.py").run()
    assert not at.exception
    assert any("no price for model 'mystery-llm'" in e.value for e in at.error)


def test_sensitivity_and_sweep_tabs_render(estimate_page):
    at = estimate_page()
    open_tab(at, "Sweep")
    at.selectbox(key="est_sweep_x").set_value("rag_chunk")
    at.selectbox(key="est_sweep_y").set_value("queries").run()
    assert not at.exception and len(at.get("plotly_chart")) == 1
    at.selectbox(key="est_sweep_y").set_value("rag_chunk").run()
    assert any("two different inputs" in i.value for i in at.info)
    open_tab(at, "Sensitivity")
    assert not at.exception and at.selectbox(key="est_tornado_b").value == "rag"
    open_tab(at, "Sweep")
    assert at.selectbox(key="est_sweep_y").value == "rag_chunk"          # kept while its tab was closed


def test_model_speeds_measured_on_this_machine_fill_the_latency_inputs(app_test):
    from workbench import evaluation

    ws = workspace.open_workspace("measured", create=True)
    speed = {"ttft_ms": 40.0, "ms_per_1k_prompt_tokens": 4000.0, "output_tokens_per_s": 100.0, "n": 70}
    ws.set_state(evaluation.MEASURED_KEY, {"rag": {
        "provider": "SmolLM2-135M-Instruct, local (tiny model, demo quality)", "model_speed": speed,
        "latency_ms_p50": 5000.0, "prompt_tokens": 900.0, "cost_per_query_usd": 0.0}})
    at = app_test("measured").run()
    at.switch_page("pages/estimate.py").run()
    # Estimate and measurement side by side in one cell each, so the table fits beside the inputs.
    side = next(d for d in at.dataframe if "latency ms p50 (measured)" in d.value.columns)
    assert list(side.proto.column_order) == ["option", "latency ms: estimate / measured",
                                             "$ per query: estimate / measured", "prompt tokens: estimate / measured"]
    rag = side.value.iloc[0]
    # gpt-4o-mini: 400 ms + 2,248 x 20/1k ms + 150 / 70 tokens/s, embed 150 ms, search 0.5 + 0.039 ms = 2,739 ms.
    assert rag["latency ms: estimate / measured"] == "2,739 / 5,000"
    assert rag["$ per query: estimate / measured"] == "$0.00043 / $0.00"    # (2,248 x 0.15 + 150 x 0.60) / 1M
    at.button(key="est_measured_speeds").click().run()
    assert not at.exception and at.checkbox(key="est:latency_custom").value
    assert at.number_input(key="est:latency.rag_model.output_tokens_per_s").value == 100
    assert at.number_input(key="est:latency.rag_model.ttft_ms").value == 40
    assert any("measured on this machine with SmolLM2-135M-Instruct" in c.value for c in at.caption)
    saved = scenario.Scenario.model_validate(ws.get_state("estimate_working"))
    assert saved.latency.rag_model.output_tokens_per_s == 100 and saved.latency.rag_model.ttft_ms == 40


def test_measured_figures_an_arm_could_not_give_read_n_a(app_test):
    from workbench import evaluation

    ws = workspace.open_workspace("gaps", create=True)
    ws.set_state(evaluation.MEASURED_KEY, {      # the fine-tuned arm failed on every question; RAG is unpriced
        "rag": {"provider": "gpt-4o-mini (OpenAI-compatible)", "latency_ms_p50": 900.0, "prompt_tokens": 800.0,
                "cost_per_query_usd": None},
        "fine_tuning": {"provider": "ft:gpt-4o-mini:acme::x1 (OpenAI-compatible)", "latency_ms_p50": None,
                        "prompt_tokens": None, "cost_per_query_usd": None}})
    at = app_test("gaps").run()
    at.switch_page("pages/estimate.py").run()
    assert not at.exception
    side = next(d for d in at.dataframe if "latency ms p50 (measured)" in d.value.columns).value.set_index("option")
    assert side.loc["Fine-tuning", "latency ms: estimate / measured"].endswith(" / n/a")
    assert side.loc["RAG", "latency ms: estimate / measured"].endswith(" / 900")
    assert side.loc["RAG", "$ per query: estimate / measured"].endswith(" / n/a")
