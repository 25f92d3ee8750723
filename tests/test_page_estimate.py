"""The Estimate page, clicked through with AppTest."""
import pytest

from workbench import decision, pricing, scenario, workspace


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


def test_defaults_worked_by_hand(estimate_page):
    at = estimate_page()
    at.date_input(key="est:start_date").set_value(__import__("datetime").date(2026, 11, 29)).run()
    rows = summary(at)
    # The default fine-tunes a LoRA served on one self-hosted L4 (it outlives the horizon): 730 h x $0.80 = $584
    # a month, plus 4 retrains a year at $0.80 / 12 each (test_costs works it through).
    assert rows["Fine-tuning"]["monthly"] == pytest.approx(584.00 + 4 * 0.80 / 12 / 12)
    assert rows["Fine-tuning"]["total"] == pytest.approx(7008.33, abs=0.01)
    assert rows["RAG"]["monthly"] == pytest.approx(79.324)
    assert not at.warning and not at.error                    # nothing in the default scenario retires
    assert at.selectbox(key="est_ft_provider").value == "self-hosted"
    assert {m.label: m.value for m in at.metric}["One training run"] == "$0.0667"


def test_choosing_openai_warns_and_names_the_cheapest_lasting_alternative(estimate_page):
    at = estimate_page()
    at.date_input(key="est:start_date").set_value(__import__("datetime").date(2026, 11, 29)).run()
    assert "no new jobs from 2027-01-06" in at.selectbox(key="est_ft_provider").format_func("openai")
    at.selectbox(key="est_ft_provider").set_value("openai").run()
    assert at.selectbox(key="est:fine_tuning.model").value == "gpt-4o-mini"       # the provider's first model
    assert summary(at)["Fine-tuning"]["total"] == pytest.approx(297.00)
    warnings = [w.value.replace("\\$", "$") for w in at.warning]   # as rendered: \$ is a literal dollar sign
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
    assert any("200 training tokens/s" in c.value for c in at.caption)
    # And the run's time follows it: 300,000 tokens / 200 tokens/s = 1,500 s = 25 minutes.
    assert any(c.value.startswith("One training run takes about 25 minutes at 200 training tokens/s") for c in at.caption)


def test_moving_a_slider_updates_the_estimate_and_is_kept(estimate_page):
    at = estimate_page()
    at.slider(key="est:rag.top_k").set_value(8).run()
    # Inference: 100k x ((200 + 8 x 512) x $0.15 + 150 x $0.60)/1M = $73.44; plus $0.10 + $0.004 + $36.50.
    assert summary(at)["RAG"]["monthly"] == pytest.approx(73.44 + 0.10 + 0.004 + 36.50)
    saved = workspace.open_workspace("blank").get_state("estimate_working")
    assert saved["rag"]["top_k"] == 8
    # Going to another page and back keeps the inputs.
    at.switch_page("pages/decide.py").run()
    at.switch_page("pages/estimate.py").run()
    assert at.slider(key="est:rag.top_k").value == 8


def test_prefilled_from_decide_answers(app_test):
    ws = workspace.open_workspace("blank", create=True)
    cfg = decision.load_decision_config()
    answers = {"query_volume": "high", "training_examples": "thousands"}
    decision.save_decision(ws, answers, decision.recommend(cfg, answers))
    at = app_test("blank").run()
    at.switch_page("pages/estimate.py").run()
    assert at.number_input(key="est:queries_per_month").value == 2_000_000
    assert at.number_input(key="est:fine_tuning.training_examples").value == 3000
    assert any("query_volume = high" in c.value for c in at.caption)


def test_prefilled_from_the_sample_data(app_test):
    from workbench import corpus, sample

    ws = sample.open_sample()
    stats = corpus.data_stats(ws)
    at = app_test().run()
    at.switch_page("pages/estimate.py").run()
    # Measured on the workspace: the answered pairs and their size as chat examples, the corpus tokens.
    assert at.number_input(key="est:fine_tuning.training_examples").value == stats.training_examples == 245
    assert at.number_input(key="est:fine_tuning.tokens_per_example").value == stats.tokens_per_example
    assert at.number_input(key="est:rag.corpus_tokens").value == stats.corpus_tokens
    assert any(c.value.startswith("measured on the workspace data") for c in at.caption)


def test_save_and_compare_scenarios(estimate_page):
    at = estimate_page()
    at.selectbox(key="est_ft_provider").set_value("openai").run()   # per-token prices, worked by hand below
    at.text_input(key="est:name").set_value("Pilot").run()
    next(b for b in at.button if b.label == "Save scenario").click().run()
    at.text_input(key="est:name").set_value("Scale")
    at.number_input(key="est:queries_per_month").set_value(5_000_000).run()
    next(b for b in at.button if b.label == "Save scenario").click().run()
    ws = workspace.open_workspace("blank")
    assert sorted(scenario.saved_scenarios(ws)) == ["Pilot", "Scale"]
    at.selectbox(key="est_cmp_left").set_value("Pilot")
    at.selectbox(key="est_cmp_right").set_value("Scale").run()
    side = next(d.value for d in at.dataframe if "Pilot: monthly" in d.value.columns)
    ft = side[side["option"] == "Fine-tuning"].iloc[0]
    assert ft["Pilot: monthly"] == pytest.approx(24.60)
    assert ft["Scale: monthly"] == pytest.approx(5_000_000 * 0.00024 + 0.60)
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
    # 100k x (2,248 x $1 + 150 x $2)/1M = $254.80 of inference.
    assert summary(at)["RAG"]["monthly"] == pytest.approx(254.80 + 0.10 + 0.004 + 36.50)


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
    at.selectbox(key="est_sweep_x").set_value("rag_chunk")
    at.selectbox(key="est_sweep_y").set_value("queries").run()
    assert not at.exception
    at.selectbox(key="est_sweep_y").set_value("rag_chunk").run()
    assert any("two different inputs" in i.value for i in at.info)


def test_model_speeds_measured_on_this_machine_fill_the_latency_inputs(app_test):
    from workbench import evaluation

    ws = workspace.open_workspace("measured", create=True)
    speed = {"ttft_ms": 40.0, "ms_per_1k_prompt_tokens": 4000.0, "output_tokens_per_s": 100.0, "n": 70}
    ws.set_state(evaluation.MEASURED_KEY, {"rag": {
        "provider": "SmolLM2-135M-Instruct, local (tiny model, demo quality)", "model_speed": speed,
        "latency_ms_p50": 5000.0, "prompt_tokens": 900.0, "cost_per_query_usd": 0.0}})
    at = app_test("measured").run()
    at.switch_page("pages/estimate.py").run()
    at.button(key="est_measured_speeds").click().run()
    assert not at.exception and at.checkbox(key="est:latency_custom").value
    assert at.number_input(key="est:latency.rag_model.output_tokens_per_s").value == 100
    assert at.number_input(key="est:latency.rag_model.ttft_ms").value == 40
    assert any("measured on this machine with SmolLM2-135M-Instruct" in c.value for c in at.caption)
    saved = scenario.Scenario.model_validate(ws.get_state("estimate_working"))
    assert saved.latency.rag_model.output_tokens_per_s == 100 and saved.latency.rag_model.ttft_ms == 40
