"""The cost and latency model against figures worked by hand and the published rules."""
import math

import numpy as np
import pytest

from workbench import costs, pricing, scenario
from workbench.errors import WorkbenchError

START = "2026-11-29"


def make(**overrides):
    return scenario.scenario_from_dict({"start_date": START, **overrides})


def by_option(est, option):
    return est.options[option]


@pytest.mark.parametrize("n, epochs", [(5, 20), (10, 10), (20, 5), (30, 3), (10_000, 2),
                                       (1, 25), (33, 3), (34, 3), (8_333, 3), (8_334, 2), (100_000, 1)])
def test_published_auto_epochs_rule(n, epochs):
    # 3, except min(25, floor(100/n)) when 3n < 100 and max(1, floor(25000/n)) when 3n > 25000.
    assert costs.auto_epochs(n) == epochs


GPT_4O_MINI = {"fine_tuning": {"model": "gpt-4o-mini-2024-07-18"}}


def test_default_scenario_outlives_its_horizon_worked_by_hand():
    e = costs.estimate(make())
    ft = e.options["fine_tuning"]
    assert e.scenario["fine_tuning"]["model"] == "llama-3.1-8b-lora-l4"
    assert not [w for w in e.warnings if w.level in ("warning", "error")]
    # LoRA on one L4: 500 x 400 x 3 = 600,000 tokens at 2,000 tokens/s = 300 s = 1/12 h x $0.80 = $0.0667.
    assert ft.training_cost_usd == pytest.approx(0.80 / 12)
    # Serving: 100,000 x (150 / 1,000 + 200 / 10,000) = 17,000 GPU-seconds, x3 at peak = 51,000 s, under
    # one replica's 2,628,000 s a month -> the one minimum replica: 730 h x $0.80 = $584.00; tokens cost $0.
    assert ft.monthly_by_component["hosting"] == pytest.approx(584.00)
    assert ft.monthly_by_component["inference"] == 0
    assert ft.total_cost_usd == pytest.approx(0.80 / 12 + 12 * 584.00 + 4 * 0.80 / 12)   # $7,008.33


def test_a_retiring_model_names_the_cheapest_lasting_alternative_and_its_cost():
    e = costs.estimate(make(**GPT_4O_MINI))
    messages = [w.message for w in e.warnings]
    assert any("No new fine-tuning jobs for gpt-4o-mini on 2027-01-06" in m for m in messages)
    alt = next(m for m in messages if m.startswith("Cheapest fine-tuning that outlives"))
    # The lasting options in this scenario: self-hosted L4 $7,008.33; Together 8B and Fireworks 8B/70B cost more
    # (a dedicated GPU at $3.36-$7.78/h all month); OpenAI models all close to new jobs; the local tiny model is
    # a demo, not a replacement.
    assert alt == ("Cheapest fine-tuning that outlives the 12-month horizon: Llama 3.1 8B + LoRA, self-hosted on "
                   "1x NVIDIA L4 (llama-3.1-8b-lora-l4), $7,008.33 over the horizon in this scenario (against "
                   "$297.00 with gpt-4o-mini)")
    found = costs.cheapest_lasting_alternative(make(**GPT_4O_MINI), pricing.load_pricing())
    assert found.model.id == "llama-3.1-8b-lora-l4" and found.total_usd == pytest.approx(7008.333, abs=0.01)
    # The Fireworks 8B figure by hand: training 600,000 x $0.50/1M = $0.30 (x5 runs: first + 4 retrains) and
    # 12 x 730 h x $3.89 = $34,077.60 -> $34,077.90.
    fw = costs.estimate(make(fine_tuning={"model": "fireworks-llama-3.1-8b-lora"}))
    assert fw.options["fine_tuning"].total_cost_usd == pytest.approx(5 * 0.30 + 12 * 730 * 3.89)
    assert any(w.level == "info" and "prices not confirmed" in w.message and "undated" in w.message
               for w in fw.warnings)


def test_per_token_fine_tuning_worked_by_hand():
    e = costs.estimate(make(**GPT_4O_MINI))
    ft, rag, seq, route = (by_option(e, o) for o in costs.OPTIONS)
    # Fine-tuning gpt-4o-mini: 500 examples x 400 tokens x 3 epochs = 600,000 billed tokens x $3/1M = $1.80.
    assert ft.epochs == 3 and ft.billed_training_tokens == 600_000
    assert ft.training_cost_usd == pytest.approx(1.80)
    assert ft.setup_cost_usd == pytest.approx(1.80)
    # Inference at fine-tuned prices: 100,000 x (200 x $0.30 + 150 x $1.20) / 1M = $24.00 a month.
    assert ft.monthly_by_component["inference"] == pytest.approx(24.00)
    # 4 retrains a year at $1.80 = $7.20 a year = $0.60 a month on average.
    assert ft.monthly_by_component["retraining"] == pytest.approx(0.60)
    assert ft.monthly_cost_usd == pytest.approx(24.60)
    assert ft.total_cost_usd == pytest.approx(1.80 + 12 * 24.00 + 4 * 1.80)  # 297.00
    assert ft.cost_per_query_usd == pytest.approx(24.60 / 100_000)
    # RAG: embed 2,000,000 tokens x $0.02/1M = $0.04 once.
    assert rag.setup_cost_usd == pytest.approx(0.04)
    # Prompt 200 + context 4 x 512 = 2,248 tokens x $0.15 + 150 x $0.60 = $427.20 per 1M queries -> $42.72.
    assert rag.monthly_by_component["inference"] == pytest.approx(42.72)
    assert rag.monthly_by_component["query embedding"] == pytest.approx(100_000 * 50 * 0.02 / 1e6)  # $0.10
    assert rag.monthly_by_component["re-embedding"] == pytest.approx(0.1 * 2_000_000 * 0.02 / 1e6)  # $0.004
    assert rag.monthly_by_component["vector store"] == pytest.approx(0.05 * 730)  # FAISS machine: $36.50
    assert rag.monthly_cost_usd == pytest.approx(42.72 + 0.10 + 0.004 + 36.50)
    # Sequential hybrid: the same 2,248-token prompt at fine-tuned prices: 2,248 x 0.30 + 150 x 1.20 = $854.40/1M.
    assert seq.monthly_by_component["inference"] == pytest.approx(85.44)
    assert seq.setup_cost_usd == pytest.approx(1.84)
    # Routing half to RAG: inference (42.72 + 24.00) / 2 = 33.36; the router embeds every query: $0.10.
    assert route.monthly_by_component["inference"] == pytest.approx(33.36)
    assert route.monthly_by_component["query embedding"] == pytest.approx(0.10)
    assert e.chunks == math.ceil(2_000_000 / 512) == 3907
    assert e.context_tokens == 2048


def test_latency_by_stage_worked_by_hand():
    e = costs.estimate(make(**GPT_4O_MINI))
    ft, rag = e.options["fine_tuning"].latency_ms, e.options["rag"].latency_ms
    # gpt-4o-mini: TTFT 400 ms + 20 ms per 1k prompt tokens; 70 output tokens/s.
    assert ft["time to first token"] == pytest.approx(400 + 0.2 * 20)
    assert ft["generation"] == pytest.approx(150 / 70 * 1000)
    assert ft["embed query"] == 0 and ft["vector search"] == 0
    assert rag["time to first token"] == pytest.approx(400 + 2.248 * 20)  # retrieved context costs time
    assert rag["embed query"] == 150
    assert rag["vector search"] == pytest.approx(0.5 + 10 * 3907 / 1e5)  # FAISS: 0.5 ms + 10 ms per 100k vectors
    assert rag["total"] == pytest.approx(sum(v for k, v in rag.items() if k != "total"))
    route = e.options["hybrid_routing"].latency_ms
    # Every routed query is embedded and searched (5 ms router + 150 + 0.8907), then half go to each model.
    assert route["total"] == pytest.approx(5 + 150 + 0.8907 + 0.5 * (444.96 + 150 / 70 * 1000)
                                           + 0.5 * (404 + 150 / 70 * 1000))  # 2,723.23 ms


def test_measured_latency_overrides_replace_defaults():
    e = costs.estimate(make(latency={"embed_query_ms": 12, "vector_search_ms": 3,
                                     "rag_model": {"ttft_ms": 100, "ms_per_1k_prompt_tokens": 0,
                                                   "output_tokens_per_s": 150}}))
    rag = e.options["rag"].latency_ms
    assert (rag["embed query"], rag["vector search"], rag["time to first token"]) == (12, 3, 100)
    assert rag["generation"] == pytest.approx(1000)


def test_fine_tuned_price_multiples_come_from_the_config():
    book = pricing.load_pricing()
    multiples = {"gpt-4o-mini": (2.0, 2.0), "gpt-4o": (1.5, 1.5), "gpt-4.1": (1.5, 1.5),
                 "gpt-4.1-mini": (2.0, 2.0), "gpt-4.1-nano": (2.0, 2.0), "gpt-3.5-turbo": (6.0, 4.0)}
    for name, (m_in, m_out) in multiples.items():
        model = book.model(name)
        assert model.fine_tuning.input / model.input == pytest.approx(m_in)
        assert model.fine_tuning.output / model.output == pytest.approx(m_out)
        # And the estimate bills them: FT inference per query over base-model inference with no context.
        e = costs.estimate(make(prompt_tokens=1000, output_tokens=0, fine_tuning={"model": name},
                                rag={"model": name, "top_k": 0}))
        ratio = e.options["fine_tuning"].monthly_by_component["inference"] / \
            e.options["rag"].monthly_by_component["inference"]
        assert ratio == pytest.approx(m_in)


def test_routing_embeds_and_searches_every_query():
    e = costs.estimate(make(queries_per_month=10_000_000, rag={"vector_store": "hosted-vector-db"},
                            hybrid={"routing_share_rag": 0.2}))
    route = e.options["hybrid_routing"]
    # 10M queries x 50 tokens x $0.02/1M = $10.00 of query embedding, though only 20 % go on to RAG.
    assert route.monthly_by_component["query embedding"] == pytest.approx(10.00)
    # The relevance router searches every query: 10M reads x $16/1M = $160 + 0.032 GB x $0.33 + 391 writes x $4/1M.
    gb = 3907 * (1536 * 4 + 2048) / 1e9
    assert route.monthly_by_component["vector store"] == pytest.approx(
        gb * 0.33 + 160 + (0.1 * 2_000_000 / 512) * 4 / 1e6)
    # Latency: the full 150 ms embedding and the hosted store's full 40 ms search, not 20 % of them.
    assert (route.latency_ms["embed query"], route.latency_ms["vector search"]) == (150, 40)


def test_estimate_vs_measured_shows_the_prompt_each_option_bills():
    e = costs.estimate(make(fine_tuning={"prompt_tokens": 50, "model": "gpt-4o-mini-2024-07-18"}))
    measured = {o: {"provider": "p", "latency_ms_p50": 1.0, "prompt_tokens": 0, "cost_per_query_usd": 0.0}
                for o in costs.OPTIONS}
    rows = {r["option"]: r["prompt tokens (estimate)"] for r in costs.estimate_vs_measured(e, measured)}
    # FT 50; RAG 200 + 4 x 512 = 2,248; sequential 50 + 2,048 = 2,098; routing (2,248 + 50) / 2 = 1,149.
    assert rows == {"Fine-tuning": 50, "RAG": 2248, "Hybrid (fine-tune, then RAG)": 2098,
                    "Hybrid (routing)": 1149}
    # And that is what inference bills: 100k x (2,098 x $0.30 + 150 x $1.20)/1M = $80.94.
    assert e.options["hybrid_sequential"].monthly_by_component["inference"] == pytest.approx(80.94)


SIMPLE_PRICES = {
    "models": [
        {"id": "ft-test", "input": 1, "output": 1, "context_window": 100000, "source": "test", "as_of": START,
         "fine_tuning": {"training": 100, "input": 1, "output": 1, "example_token_limit": 5000}},
        {"id": "base-test", "input": 1, "output": 1, "context_window": 100000, "source": "test", "as_of": START},
    ],
    "embeddings": [{"id": "emb-test", "price": 0, "dimensions": 8, "source": "test", "as_of": START}],
    "vector_stores": [{"id": "vs-test", "source": "test", "as_of": START}],
}


def simple(**overrides):
    base = {"queries_per_month": 1000, "prompt_tokens": 1000, "output_tokens": 0, "months": 36,
            "custom_prices": SIMPLE_PRICES,
            "fine_tuning": {"model": "ft-test", "training_examples": 100, "tokens_per_example": 1000,
                            "retrains_per_year": 0},
            "rag": {"model": "base-test", "embedding_model": "emb-test", "vector_store": "vs-test",
                    "top_k": 2, "chunk_tokens": 500, "corpus_tokens": 1000, "query_tokens": 0}}
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return make(**base)


@pytest.mark.parametrize("fine_tuning, expected, missing", [
    ({"training": 3.0}, 1000 * (1000 * 1 + 100 * 2) / 1e6, "input $1, output $2"),   # $1.20, not $0
    ({"training": 3.0, "input": 4}, 1000 * (1000 * 4 + 100 * 2) / 1e6, "output $2"),  # $4.20, not $4.00
])
def test_missing_fine_tuned_price_falls_back_to_base_with_a_warning(fine_tuning, expected, missing):
    entry = {"id": "ft-partial", "input": 1, "output": 2, "source": "test", "as_of": START,
             "fine_tuning": fine_tuning}
    e = costs.estimate(simple(output_tokens=100, fine_tuning={"model": "ft-partial"},
                              custom_prices={"models": SIMPLE_PRICES["models"] + [entry]}))
    assert e.options["fine_tuning"].monthly_by_component["inference"] == pytest.approx(expected)
    gap = [w for w in e.warnings if "priced at the base model's" in w.message]
    assert len(gap) == 1 and gap[0].level == "warning" and gap[0].option == "fine_tuning"
    assert "ft-partial" in gap[0].message and missing in gap[0].message


def test_model_without_fine_tuning_block_warns_it_uses_base_prices():
    e = costs.estimate(simple(output_tokens=100, fine_tuning={"model": "base-test"}))
    # base-test's own prices: 1,000 x (1,000 x $1 + 100 x $1)/1M = $1.10.
    assert e.options["fine_tuning"].monthly_by_component["inference"] == pytest.approx(1.10)
    gap = next(w for w in e.warnings if "priced at the base model's" in w.message)
    assert gap.level == "warning" and "base-test has no fine_tuning block" in gap.message
    assert "input $1, output $1" in gap.message
    hosted = costs.estimate(make(fine_tuning={"model": "llama-3.1-8b-lora-l4"}))  # GPU hours: exempt
    shipped = costs.estimate(make())
    assert not any("priced at the base model's" in w.message for w in hosted.warnings + shipped.warnings)


def test_break_even_month_and_volume_worked_by_hand():
    e = costs.estimate(simple())
    ft, rag = e.options["fine_tuning"], e.options["rag"]
    # FT: 100 x 1,000 x 3 epochs = 300,000 tokens x $100/1M = $30 set-up; 1,000 queries x 1,000 tokens x $1/1M = $1/month.
    assert ft.setup_cost_usd == pytest.approx(30) and ft.monthly_cost_usd == pytest.approx(1)
    # RAG: prompt 1,000 + 2 x 500 context = 2,000 tokens -> $2/month, nothing to set up.
    assert rag.setup_cost_usd == 0 and rag.monthly_cost_usd == pytest.approx(2)
    # Cumulative: FT 30 + m, RAG 2m: equal in month 30.
    pair = next(b for b in e.break_even if (b.a, b.b) == ("fine_tuning", "rag"))
    assert pair.cheaper_at_start == "rag" and pair.cheaper_at_end == "fine_tuning"
    assert pair.month == 30
    # Over 36 months totals are equal where 30 + 36 x Q x 0.001 = 36 x Q x 0.002, i.e. Q = 833.33 queries/month.
    assert pair.monthly_queries == pytest.approx(30 / (36 * 0.001), rel=1e-6)
    # With a 24-month horizon the crossing is beyond it: never.
    short = costs.estimate(simple(months=24))
    assert next(b for b in short.break_even if (b.a, b.b) == ("fine_tuning", "rag")).month is None


def test_break_even_month_function():
    a = np.array([100.0, 110, 120, 130, 140, 150, 160])   # set-up 100, then 10 a month
    b = np.array([0.0, 30, 60, 90, 120, 150, 180])        # nothing, then 30 a month
    assert costs.break_even_month(a, b) == 5               # equal at month 5
    assert costs.break_even_month(a, b + 100) is None      # b always dearer: never
    assert costs.break_even_month(b, b) is None


def test_training_examples_over_the_limit_are_billed_at_the_limit():
    e = costs.estimate(simple(fine_tuning={"tokens_per_example": 8000}))
    # 100 examples truncated to 5,000 tokens x 3 epochs = 1,500,000 tokens x $100/1M = $150.
    assert e.options["fine_tuning"].billed_training_tokens == 1_500_000
    assert e.options["fine_tuning"].training_cost_usd == pytest.approx(150)
    assert any("exceed the 5,000-token limit" in w.message for w in e.warnings)


def test_retraining_cadence_and_growing_dataset():
    e = costs.estimate(simple(months=12, fine_tuning={"retrains_per_year": 4, "examples_added_per_retrain": 100}))
    series = e.options["fine_tuning"].monthly_series_usd
    # Retrains in months 3, 6, 9, 12 on 200, 300, 400, 500 examples (3 epochs x 1,000 tokens x $100/1M = $0.30
    # per example), on top of $1 of inference each month.
    assert [round(x, 6) for x in series] == [1, 1, 61, 1, 1, 91, 1, 1, 121, 1, 1, 151]


def test_chunk_overlap_embeds_more_tokens():
    e = costs.estimate(make(rag={"chunk_tokens": 512, "chunk_overlap": 128}))
    # Stride 384: 2,000,000 x 512/384 = 2,666,667 tokens embedded x $0.02/1M.
    assert e.options["rag"].setup_cost_usd == pytest.approx(2_000_000 * 512 / 384 * 0.02 / 1e6)
    assert e.chunks == math.ceil(2_000_000 / 384)


def test_cached_prompt_share_uses_cached_price():
    e = costs.estimate(make(cached_prompt_share=0.5, rag={"top_k": 0}))
    # 100 of the 200 prompt tokens at $0.075 instead of $0.15: 100k x (100 x 0.15 + 100 x 0.075 + 150 x 0.60)/1M.
    assert e.options["rag"].monthly_by_component["inference"] == pytest.approx(100_000 * (15 + 7.5 + 90) / 1e6)


def test_hosted_vector_database_and_file_search():
    e = costs.estimate(make(rag={"vector_store": "hosted-vector-db"}))
    # 3,907 chunks x (1,536 x 4 + 2,048 bytes) = 0.032 GB x $0.33 + 100k reads x $16/1M + 391 writes x $4/1M
    # = $1.61 of usage, under the $50 monthly minimum.
    assert e.options["rag"].monthly_by_component["vector store"] == pytest.approx(50)
    big = costs.estimate(make(queries_per_month=10_000_000, rag={"vector_store": "hosted-vector-db"}))
    gb = 3907 * (1536 * 4 + 2048) / 1e9
    expected = gb * 0.33 + 10_000_000 * 16 / 1e6 + (0.1 * 2_000_000 / 512) * 4 / 1e6
    assert big.options["rag"].monthly_by_component["vector store"] == pytest.approx(expected)
    fs = costs.estimate(make(rag={"vector_store": "openai-file-search"}))
    # 0.032 GB is inside the free GB; 100,000 searches x $2.50 per 1,000.
    assert fs.options["rag"].monthly_by_component["vector store"] == pytest.approx(250)


def test_self_hosted_lora_model():
    e = costs.estimate(make(fine_tuning={"model": "llama-3.1-8b-lora-l4"}))
    ft = e.options["fine_tuning"]
    # 600,000 training tokens at 2,000 tokens/s = 300 s of an $0.80/h GPU = $0.0667.
    assert ft.training_cost_usd == pytest.approx(300 / 3600 * 0.80)
    # Load: 100k x (150/1000 + 200/10000) s = 17,000 GPU-s; x3 peak is far below one GPU-month: 1 replica x 730 h.
    assert ft.monthly_by_component["hosting"] == pytest.approx(730 * 0.80)
    assert ft.monthly_by_component["inference"] == 0
    busy = costs.estimate(make(queries_per_month=50_000_000, fine_tuning={"model": "llama-3.1-8b-lora-l4"}))
    # 50M x 0.17 s x 3 / 2,628,000 s = 9.70 -> 10 replicas.
    assert busy.options["fine_tuning"].monthly_by_component["hosting"] == pytest.approx(10 * 730 * 0.80)


def test_warnings():
    e = costs.estimate(make(fine_tuning={"training_examples": 8, "model": "gpt-4o-mini-2024-07-18"},
                            rag={"model": "gpt-3.5-turbo", "top_k": 40, "chunk_tokens": 512}))
    messages = [(w.level, w.message) for w in e.warnings]
    assert ("error", "8 training examples: fine-tuning needs at least 10 (50 to 100 recommended)") in messages
    overflow = next(m for lvl, m in messages if "does not fit" in m)
    # 200 + 40 x 512 + 150 = 20,830 tokens in a 16,385 window: over by 4,445.
    assert "20,830 tokens" in overflow and "over by 4,445" in overflow and "gpt-3.5-turbo" in overflow
    assert any("No new fine-tuning jobs" in m and "2027-01-06" in m for _, m in messages)
    assert any("stop serving on 2027-01-14" in m for _, m in messages)
    later = costs.estimate(make(start_date="2027-02-01", **GPT_4O_MINI))
    assert any(w.level == "error" and "closed to new jobs" in w.message for w in later.warnings)
    assert any(w.level == "error" and "already past" in w.message for w in later.warnings)
    nano = costs.estimate(make(fine_tuning={"model": "gpt-4.1-nano"}))
    assert not any("stop serving" in w.message for w in nano.warnings)  # no shutdown date announced


def test_unknown_model_is_a_clear_recoverable_error():
    with pytest.raises(WorkbenchError) as err:
        costs.estimate(make(rag={"model": "my-llm"}))
    assert err.value.field == "rag.model"
    assert "no price for model 'my-llm'" in str(err.value) and "custom price" in str(err.value)
    priced = make(rag={"model": "my-llm"}, custom_prices={"models": [
        {"id": "my-llm", "input": 1, "output": 2, "source": "our contract", "as_of": START}]})
    assert costs.estimate(priced).options["rag"].monthly_cost_usd > 0


def test_custom_prices_saved_in_a_workspace_override_the_book():
    from workbench.workspace import open_workspace
    ws = open_workspace("prices", create=True)
    pricing.save_custom_price(ws, "models", {"id": "gpt-4o-mini", "input": 0.1, "output": 0.5,
                                            "source": "negotiated", "as_of": START})
    book = pricing.load_pricing().with_custom(pricing.saved_custom_prices(ws))
    assert book.model("gpt-4o-mini").input == 0.1
    assert book.model("gpt-4o-mini-2024-07-18").input == 0.15  # the alias still names the shipped entry
    with pytest.raises(WorkbenchError) as err:
        pricing.save_custom_price(ws, "models", {"id": "bad", "input": -1, "source": "x", "as_of": START})
    assert "models.0.input" in str(err.value) and "greater than or equal to 0" in str(err.value)
    assert pricing.saved_custom_prices(ws)["models"][0]["id"] == "gpt-4o-mini"  # nothing lost
    pricing.delete_custom_price(ws, "models", "gpt-4o-mini")
    assert pricing.saved_custom_prices(ws)["models"] == []


def test_every_price_has_a_source_and_date():
    book = pricing.load_pricing()
    rows = book.sources()
    assert len(rows) == len(book.models) + len(book.embeddings) + len(book.vector_stores)
    assert all(r["source"] and r["as_of"] for r in rows)
    assert any(m.self_hosted for m in book.models)
    assert {v.id for v in book.vector_stores} >= {"faiss-local", "hosted-vector-db", "openai-file-search"}


def test_compute_on_a_grid_matches_single_estimates():
    s = make()
    params = costs.resolve(s)
    grid = costs.compute({**params, "queries": np.array([1e3, 1e5, 1e7])})
    for i, q in enumerate([1e3, 1e5, 1e7]):
        one = costs.estimate(make(queries_per_month=q))
        for opt in costs.OPTIONS:
            assert grid[opt]["total"][i] == pytest.approx(one.options[opt].total_cost_usd)


def test_scenario_validation_names_field_and_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("queries_per_month: -5\nrag:\n  top_k: 4\n  chunk_tokens: 100\n  chunk_overlap: 100\n")
    with pytest.raises(WorkbenchError) as err:
        scenario.load_scenario(path)
    msg = str(err.value)
    assert "line 1 'queries_per_month'" in msg and "greater than or equal to 1" in msg
    assert "chunk_overlap (100) must be smaller than chunk_tokens (100)" in msg
    path.write_text("queries_per_month: .nan\n")
    with pytest.raises(WorkbenchError, match="finite number"):
        scenario.load_scenario(path)
    path.write_text("rag: {top_k: 4, topk: 5}\n")
    with pytest.raises(WorkbenchError) as err:
        scenario.load_scenario(path)
    assert err.value.field == "rag.topk" and err.value.line == 1


def test_prefill_from_decide_and_measured_data():
    base = make()
    p = scenario.explain_prefill(base, {"query_volume": "high", "knowledge_freshness": "daily",
                                        "citations": "required"},
                                 scenario.DataStats(corpus_tokens=123_456, training_examples=87,
                                                    tokens_per_example=321.5, output_tokens=120))
    s = p.scenario
    assert s.queries_per_month == 2_000_000
    assert s.fine_tuning.retrains_per_year == 52 and s.rag.monthly_churn == 0.5
    assert s.rag.corpus_tokens == 123_456
    assert (s.fine_tuning.training_examples, s.fine_tuning.tokens_per_example, s.output_tokens) == (87, 321.5, 120)
    assert "Queries per month: 2,000,000 (from your Decide answer “Over 1 million” to “How many queries a month do you expect?”)" in p.notes
    assert "Training examples: 87 (measured from the workspace's 87 answered pairs)" in p.notes
    assert p.sources["fine_tuning.tokens_per_example"] == "measured on the workspace's 87 answered pairs"
    assert p.sources["prompt_tokens"] == "default"
    assert s.rag.top_k == base.rag.top_k  # untouched values stay
    assert scenario.prefill(base, {"query_volume": "high"})[1] == scenario.explain_prefill(
        base, {"query_volume": "high"}).notes   # the memo's notes are the page's


def test_prefill_keeps_figures_that_cannot_stand_for_production():
    # The sample's shape: 245 terse pairs (8-token answers, 44.8-token examples) over a 14,253-token corpus.
    p = scenario.explain_prefill(make(), {}, scenario.DataStats(corpus_tokens=14_253, training_examples=245,
                                                                tokens_per_example=44.8, output_tokens=8))
    s = p.scenario
    assert (s.fine_tuning.training_examples, s.fine_tuning.tokens_per_example, s.output_tokens) == (245, 400, 150)
    assert p.sources["output_tokens"] == ("default: not the measured 8; reference answers under 40 tokens are "
                                          "terser than what a model writes")
    assert p.sources["fine_tuning.tokens_per_example"].startswith("default: not the measured 44.8; examples under 100")
    # A 14,253-token corpus (28 chunks) lives in the app's process: the RAG bill has no machine in it.
    assert (s.rag.vector_store, s.rag.in_process_index) == ("faiss-local", True)
    rag = costs.estimate(s).options["rag"]
    assert rag.monthly_by_component["vector store"] == 0
    # Inference 100k x (200 + 4 x 512) x $0.15 + 150 x $0.60 per 1M = $42.72, query embedding $0.10,
    # re-embedding 10 % of 14,253 tokens at $0.02/1M.
    assert rag.monthly_cost_usd == pytest.approx(42.72 + 0.10 + 0.1 * 14_253 * 0.02 / 1e6)
    # Prefilled again after the corpus grew past 20M tokens: the index needs its machine again.
    grown = scenario.explain_prefill(s, {}, scenario.DataStats(corpus_tokens=30_000_000)).scenario
    assert not grown.rag.in_process_index and costs.estimate(grown).options["rag"].monthly_by_component["vector store"] > 0
    # Twelve pairs are too few to plan on: the default count stays, and says why.
    few = scenario.explain_prefill(make(), {}, scenario.DataStats(training_examples=12, tokens_per_example=500))
    assert few.scenario.fine_tuning.training_examples == 500
    assert few.sources["fine_tuning.training_examples"] == ("default: not the measured 12; fewer answered pairs "
                                                            "than the 20 a plan can rest on")


def test_prefill_without_pairs_says_fine_tuning_is_costed_at_the_default():
    p = scenario.explain_prefill(make(), {"query_volume": "low"}, None)
    assert p.scenario.fine_tuning.training_examples == 500
    assert p.notes[-1] == ("Fine-tuning is costed at 500 training examples (default): the workspace has no "
                           "question/answer pairs yet.")
    assert p.sources["fine_tuning.training_examples"] == "default; the workspace has no question/answer pairs yet"
    decided = scenario.explain_prefill(make(), {"training_examples": "thousands"}, None)
    assert decided.notes == ["Fine-tuning is costed at 3,000 training examples (from your Decide answer “Thousands or "
                             "more” to “How many high-quality examples (input and ideal output) do you have or could "
                             "write?”): the workspace has no question/answer pairs yet."]


@pytest.mark.parametrize("amount, shown", [
    (7008.333, "$7,008.33"), (0.10, "$0.10"), (0.35, "$0.35"), (0, "$0.00"), (None, "n/a"),
    # two significant figures below ten cents: a per-query cost of 2.4 hundredths of a cent, not $0.000000
    (0.00024, "$0.00024"), (0.0667, "$0.067"), (0.002434, "$0.0024"), (1.2e-6, "$0.0000012"),
    (0.0996, "$0.10"), (0.000996, "$0.0010"), (-0.0024, "-$0.0024"), (-5, "-$5.00"), (1e-13, "$0.00"),
    (float("nan"), "n/a")])
def test_format_usd_shows_significant_figures(amount, shown):
    assert costs.format_usd(amount) == shown


def test_named_scenarios_in_a_workspace():
    from workbench.workspace import open_workspace
    ws = open_workspace("scen", create=True)
    scenario.save_scenario(ws, make(name="Pilot", queries_per_month=5000))
    scenario.save_scenario(ws, make(name="Scale", queries_per_month=5_000_000))
    assert sorted(scenario.saved_scenarios(ws)) == ["Pilot", "Scale"]
    assert scenario.get_saved_scenario(ws, "Scale").queries_per_month == 5_000_000
    scenario.delete_scenario(ws, "Pilot")
    with pytest.raises(WorkbenchError, match="no saved scenario named 'Pilot'; saved: Scale"):
        scenario.get_saved_scenario(ws, "Pilot")


@pytest.mark.parametrize("queries", ["1e-300", "0", "0.5"])
def test_queries_per_month_is_at_least_one(tmp_path, queries):
    # 1e-300 queries a month made a 300-digit cost per query; 0 made a $0.00 one.
    path = tmp_path / "s.yaml"
    path.write_text(f"name: tiny\nqueries_per_month: {queries}\n")
    with pytest.raises(WorkbenchError) as err:
        scenario.load_scenario(path)
    assert str(err.value).startswith(f"{path}, line 2: field 'queries_per_month': input should be greater than or equal to 1 (got ")
    path.write_text("queries_per_month: 1\n")
    one = costs.estimate(scenario.load_scenario(path))
    assert len(costs.format_usd(one.options["rag"].cost_per_query_usd)) < 20
