"""Comparison runs: resume without recomputing, the router, the summary shape, the eval CLI, the OpenAI path."""
import json
import threading
from collections import Counter

import pytest
from click.testing import CliRunner

from workbench import evaluation, finetune, sample, splits, workspace
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.providers.local_trainer import Hyperparameters


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    home = tmp_path_factory.mktemp("h")
    ws = workspace.open_workspace("sample", home=home, create=True)
    sample.ensure_sample(ws)
    splits.make_split(ws, 0.2, 0)
    finetune.run_local(ws, Hyperparameters(epochs=10))
    held_out = evaluation.default_questions(ws)
    questions = [q for q in held_out if q.answer][:20] + [q for q in held_out if not q.answer][:4]
    return ws, questions


def test_interrupted_run_resumes_and_computes_each_question_once(prepared):
    ws, questions = prepared
    settings = evaluation.EvalSettings(arms=["rag", "ft", "router"], concurrency=2)
    ctx = evaluation.build_arms(ws, settings)
    calls = Counter()
    for arm in ("rag", "ft"):
        original = getattr(ctx, arm)

        def counted(p, _arm=arm, _f=original):
            calls[(_arm, p.id)] += 1
            return _f(p)
        setattr(ctx, arm, counted)
    run_id = evaluation.create_run(ws, questions, settings)
    stop = threading.Event()

    def progress(arm, done, total, eta):
        if arm == "ft" and done >= 5:
            stop.set()  # a crash or a closed tab, half-way through the fine-tuned arm

    evaluation.run(ws, run_id, ctx, progress, stop)
    state = {r["id"]: r["state"] for r in evaluation.runs(ws)}[run_id]
    saved = evaluation.results(ws, run_id)
    assert state == "stopped" and len(saved["rag"]) == len(questions) and 5 <= len(saved["ft"]) < len(questions)
    evaluation.run(ws, run_id, ctx)   # resume
    saved = evaluation.results(ws, run_id)
    assert {a: len(v) for a, v in saved.items()} == {"rag": 24, "ft": 24, "router": 24}
    assert max(calls.values()) == 1, [k for k, v in calls.items() if v > 1]   # nothing computed twice
    assert {r["id"]: r["state"] for r in evaluation.runs(ws)}[run_id] == "complete"
    # The router reused the saved answers of the arm it chose.
    for qid, routed in saved["router"].items():
        chosen = saved[routed.routed_to][qid]
        assert routed.answer == chosen.answer and "route" in routed.latency_ms


def test_summary_has_every_metric_with_intervals(prepared):
    ws, questions = prepared
    settings = evaluation.EvalSettings(arms=["base", "rag", "ft", "ft_rag", "router"])
    ctx = evaluation.build_arms(ws, settings)
    run_id = evaluation.create_run(ws, questions, settings)
    evaluation.run(ws, run_id, ctx)
    s = evaluation.summarize(ws, run_id, ctx.embedder)
    for arm in settings.arms:
        m = s[arm]["metrics"]
        for key in ("exact_match", "f1", "semantic_similarity", "abstention_rate", "fabrication_rate",
                    "latency_ms_p50", "latency_ms_p95", "prompt_tokens", "output_tokens", "cost_per_query_usd"):
            assert key in m and f"{key}_ci_low" in m and f"{key}_ci_high" in m and f"{key}_n" in m, (arm, key)
            if m[f"{key}_ci_low"] is not None:
                assert m[f"{key}_ci_low"] <= m[key] + 1e-9 and m[key] <= m[f"{key}_ci_high"] + 1e-9, (arm, key)
        # 20 answerable and 4 unanswerable questions: too few of the latter for an interval.
        assert (m["f1_n"], m["abstention_rate_n"]) == (20, 4)
        assert m["f1_ci_low"] is not None and m["abstention_rate_ci_low"] is None
        assert len(s[arm]["per_question"]) == len(questions)
    for arm in ("rag", "ft_rag", "router"):
        assert {"recall_at_5", "mrr", "ndcg_at_10", "groundedness"} <= set(s[arm]["metrics"])
    assert s["base"]["metrics"]["abstention_rate"] == 1.0  # the offline stand-in has no knowledge of its own
    assert s["ft"]["metrics"]["fabrication_rate"] == 1.0   # like a fine-tuned model, it always answers
    assert s["rag"]["metrics"]["f1"] > s["ft"]["metrics"]["f1"]
    r = s["router"]
    assert r["routing_accuracy_n"] <= r["routing_compared"] == len(questions)
    assert r["routing_accuracy"] is None or 0 <= r["routing_accuracy"] <= 1
    assert len(s["comparisons"]) == 10
    measured = evaluation.save_measured(ws, s)
    assert set(measured) == {"rag", "fine_tuning", "hybrid_sequential", "hybrid_routing"}
    assert measured["rag"]["latency_ms_p50"] == s["rag"]["metrics"]["latency_ms_p50"]


def test_router_rules(prepared):
    ws, questions = prepared
    ctx = evaluation.build_arms(ws, evaluation.EvalSettings(arms=["router"], router_threshold=-1.0))
    assert {ctx.route(q)[0] for q in questions[:5]} == {"rag"}          # everything clears a threshold of -1
    ctx.settings = ctx.settings.model_copy(update={"router_threshold": 1.0})
    assert {ctx.route(q)[0] for q in questions[:5]} == {"ft"}
    ctx.settings = ctx.settings.model_copy(update={"router_rule": "classifier"})
    with pytest.raises(WorkbenchError, match="not trained"):
        ctx.route(questions[0])
    examples = [("How do I reset my password?", "rag"), ("Where do I change my password?", "rag"),
                ("What does error TB-1042 mean?", "rag"), ("Write a friendly greeting", "ft"),
                ("Say hello in our brand voice", "ft"), ("Give a short welcome message", "ft")]
    evaluation.train_router(ctx, examples)
    assert ctx.classifier.predict(ctx.embedder.embed(["How can I reset the password?", "Write a warm greeting"])) \
        == ["rag", "ft"]
    with pytest.raises(WorkbenchError, match="both labels"):
        evaluation.RouterClassifier.fit(ctx.embedder.embed(["a", "b"]), ["rag", "rag"])


def test_oracle_labels_for_the_router():
    def r(qid, answer, gold, abstained=False):
        return evaluation.QuestionResult("x", qid, "q", gold, "factual", answer, abstained)
    rag = {"1": r("1", "30 days", "30 days"), "2": r("2", "no", "14 days"), "3": r("3", "", "", True)}
    ft = {"1": r("1", "14 days", "30 days"), "2": r("2", "14 days", "14 days"), "3": r("3", "x", "")}
    assert evaluation.oracle_labels(rag, ft) == {"1": "rag", "2": "ft", "3": "rag"}


def test_missing_fine_tuned_model_is_explained(tmp_path):
    ws = workspace.open_workspace("noft", create=True)
    sample.ensure_sample(ws)
    settings = evaluation.EvalSettings(arms=["ft"])
    ctx = evaluation.build_arms(ws, settings)
    run_id = evaluation.create_run(ws, evaluation.default_questions(ws)[:3], settings)
    with pytest.raises(WorkbenchError, match="no fine-tuned model yet"):
        evaluation.run(ws, run_id, ctx)


def test_eval_cli_on_a_small_corpus(tmp_path):
    docs = tmp_path / "corpus.jsonl"
    docs.write_text("\n".join(json.dumps({"id": f"d{i}", "title": f"Topic {i}",
                                          "text": f"# Topic {i}\n\nThe code for topic {i} is {1000 + i}."})
                              for i in range(12)))
    qa = tmp_path / "qa.jsonl"
    rows = [{"question": f"What is the code for topic {i}?", "answer": f"{1000 + i}", "doc_ids": [f"d{i}"]}
            for i in range(12)]
    rows += [{"question": f"Which code belongs to topic {i}?", "answer": f"{1000 + i}", "doc_ids": [f"d{i}"]}
             for i in range(12)]
    rows += [{"question": "Who invented the moon?", "answer": "", "doc_ids": []}]
    qa.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "results.json"
    result = CliRunner().invoke(main, ["eval", "--docs", str(docs), "--qa", str(qa), "--arms", "base,rag,ft,ft_rag,router",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    for arm in ("base", "rag", "ft", "ft_rag", "router"):
        m = data[arm]["metrics"]
        assert all(isinstance(v, (int, float)) or v is None for v in m.values())
        assert {"exact_match", "f1", "semantic_similarity", "abstention_rate", "fabrication_rate", "latency_ms_p50",
                "latency_ms_p95", "cost_per_query_usd", "f1_ci_low", "f1_ci_high"} <= set(m)
        assert data[arm]["per_question"]
    assert {"recall_at_5", "mrr", "ndcg_at_10"} <= set(data["rag"]["metrics"])
    held = set(data["run"]["question_ids"])
    assert "Who invented the moon?" in {q["question"] for q in data["rag"]["per_question"]}
    assert data["run"]["overlap"] == 0 and len(held) < 25 and "test side" in data["run"]["scored"]
    # Without a fine-tuned arm nothing needs holding out: every question of QA.jsonl is scored.
    again = CliRunner().invoke(main, ["eval", "--docs", str(docs), "--qa", str(qa), "--arms", "rag",
                                      "--out", str(out)], catch_exceptions=False)
    rag_only = json.loads(out.read_text())
    assert again.exit_code == 0 and "scoring 25 question(s): all 25 questions" in again.output
    assert rag_only["run"]["questions"] == len(rag_only["rag"]["per_question"]) == 25 > len(held)
    bad = CliRunner().invoke(main, ["eval", "--docs", str(docs), "--qa", str(qa), "--arms", "rag,magic",
                                    "--out", str(out)])
    assert "unknown arm(s): magic" in bad.output


def test_the_openai_arms_on_the_local_server(openai_server, openai_providers):
    ws = workspace.open_workspace("oa-eval", create=True)
    sample.ensure_sample(ws)
    splits.make_split(ws)
    settings = evaluation.EvalSettings(arms=["base", "rag"], concurrency=3)
    ctx = evaluation.build_arms(ws, settings)
    assert not ctx.chat.offline
    questions = evaluation.default_questions(ws)[:6]
    openai_server.inject({"status": 429, "retry_after": 0}, times=2, path="/v1/chat")
    run_id = evaluation.create_run(ws, questions, settings)
    evaluation.run(ws, run_id, ctx)
    s = evaluation.summarize(ws, run_id)
    for arm in ("base", "rag"):
        m = s[arm]["metrics"]
        assert m["cost_per_query_usd"] > 0 and m["prompt_tokens"] > 0 and s[arm]["errors"] == 0
    assert s["rag"]["metrics"]["prompt_tokens"] > s["base"]["metrics"]["prompt_tokens"]  # context costs tokens
    chat_calls = [r for r in openai_server.requests if r["path"] == "/v1/chat/completions"]
    assert len(chat_calls) == 12 + 2   # 6 questions x 2 arms, plus the 2 rate-limited tries


class GradingModel:
    """A stand-in judge for the test: correct when the candidate contains the reference answer."""

    name, label, offline, model_id, generative = "grader", "grader", False, "grader", True

    def complete(self, messages, max_tokens=50, grounding=None, *, schema=None, on_token=None):
        from workbench.providers import ChatResult

        text = messages[-1]["content"]
        reference = text.split("Reference answer: ")[1].split("\nCandidate answer: ")[0]
        candidate = text.split("\nCandidate answer: ")[1].split("\nContext:\n")[0]
        verdict = "true" if reference.lower() in candidate.lower() else "false"
        return ChatResult(f'{{"correct": {verdict}, "faithful": true}}', 10, 5, "grader")


def test_llm_judge_and_its_agreement(prepared):
    ws, questions = prepared
    settings = evaluation.EvalSettings(arms=["rag", "ft"])
    ctx = evaluation.build_arms(ws, settings)
    run_id = evaluation.create_run(ws, questions, settings)
    evaluation.run(ws, run_id, ctx)
    report = evaluation.judge(ws, run_id, GradingModel())
    saved = evaluation.results(ws, run_id)
    rag_answered = [r for r in saved["rag"].values() if r.gold and not r.abstained]
    assert report["rag"]["judged"] == len(rag_answered)
    expected = sum(r.gold.lower() in r.answer.lower() for r in rag_answered) / len(rag_answered)
    assert report["rag"]["correct_rate"] == pytest.approx(expected)
    assert 0 <= report["rag"]["agreement_with_f1"] <= 1
    with pytest.raises(WorkbenchError, match="needs a chat model that writes its own answers"):
        evaluation.judge(ws, run_id, ctx.chat)  # the extractive stand-in cannot grade


def test_unreadable_judge_verdicts_are_left_out(openai_server, openai_providers):
    from workbench import providers

    ws = workspace.open_workspace("judge", create=True)
    sample.ensure_sample(ws)
    splits.make_split(ws)
    settings = evaluation.EvalSettings(arms=["rag"])
    ctx = evaluation.build_arms(ws, settings)
    run_id = evaluation.create_run(ws, evaluation.default_questions(ws)[:4], settings)
    evaluation.run(ws, run_id, ctx)
    report = evaluation.judge(ws, run_id, providers.get_chat_model())  # the test server does not answer in JSON
    assert report["rag"] == {"judged": 0, "correct_rate": None, "faithful_rate": None, "agreement_with_f1": None}


# --- runs that resume as they started, and figures that mean what they say --------------------------

def test_a_resumed_run_keeps_its_saved_settings(prepared):
    ws, questions = prepared
    run_id = evaluation.create_run(ws, questions[:6], evaluation.EvalSettings(arms=["router"], router_threshold=-1.0))
    # Today's widgets say "everything to the fine-tuned arm"; the run was made with "everything to RAG".
    ctx = evaluation.build_arms(ws, evaluation.EvalSettings(arms=["router"], router_threshold=1.0))
    evaluation.run(ws, run_id, ctx)
    assert {r.routed_to for r in evaluation.results(ws, run_id)["router"].values()} == {"rag"}
    other = finetune.run_local(ws, Hyperparameters(epochs=2))
    try:
        with pytest.raises(WorkbenchError, match=f"made with the fine-tuned model .*; resuming it with '{other['id']}' "
                                                 "is refused"):
            evaluation.run(ws, run_id, evaluation.build_arms(ws, evaluation.EvalSettings(arms=["router"],
                                                                                          ft_model=other["id"])))
    finally:
        with ws.db() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (other["id"],))


def test_router_errors_are_per_question_and_the_run_never_stays_running(prepared):
    ws, questions = prepared
    settings = evaluation.EvalSettings(arms=["router"])
    ctx = evaluation.build_arms(ws, settings)
    original = ctx.route

    def flaky(p):
        if p.id == questions[1].id:
            raise WorkbenchError("the router's provider timed out")
        return original(p)
    ctx.route = flaky
    run_id = evaluation.create_run(ws, questions[:4], settings)
    evaluation.run(ws, run_id, ctx)
    state = {r["id"]: r["state"] for r in evaluation.runs(ws)}[run_id]
    saved = evaluation.results(ws, run_id)["router"]
    assert state == "incomplete" and saved[questions[1].id].error == "the router's provider timed out"
    assert evaluation.summarize(ws, run_id, ctx.embedder)["router"]["errors"] == 1
    ctx.route = original
    evaluation.run(ws, run_id, ctx)                                   # a resume retries the failed question
    assert {r["id"]: r["state"] for r in evaluation.runs(ws)}[run_id] == "complete"

    def broken(p):
        raise RuntimeError("a bug")
    ctx.route = broken
    again = evaluation.create_run(ws, questions[:2], settings)
    with pytest.raises(RuntimeError):
        evaluation.run(ws, again, ctx)
    assert {r["id"]: r["state"] for r in evaluation.runs(ws)}[again] == "failed"   # not left "running"


class Embedder64:
    """A deterministic 64-dimension embedder, unlike the local trainer's 384."""

    name, label, offline, model_id, dimensions = "e64", "e64", True, "e64", 64

    def embed(self, texts):
        import numpy as np
        out = np.zeros((len(texts), 64), dtype="float32")
        for i, t in enumerate(texts):
            out[i, hash(t) % 64] = 1.0
        return out


def test_the_local_trainer_reads_questions_through_its_own_embedder(prepared):
    from workbench.providers.extractive import ExtractiveAnswerer

    ws, questions = prepared
    ctx = evaluation.Arms(ws, evaluation.EvalSettings(arms=["ft"]), ExtractiveAnswerer(), Embedder64(), None)
    result = ctx.ft(questions[0])          # on the configured 64-dim embedder this was a 64-vs-384 matmul error
    assert result.answer and result.error is None


class ScriptedChat:
    """A chat model that replies with a fixed text (a plugin-style test double, not a patch)."""

    name, offline, model_id, generative = "scripted", False, "scripted", True

    def __init__(self, reply):
        self.reply, self.label = reply, f"scripted: {reply[:20]}"

    def complete(self, messages, max_tokens=512, grounding=None, *, schema=None, on_token=None):
        from workbench.providers import ChatResult
        return ChatResult(self.reply, 10, 5, "scripted")


def test_abstention_is_the_arm_s_flag_not_a_phrase_match(prepared):
    from workbench import rag

    ws, questions = prepared
    prompts = rag.load_prompts()
    assert rag.is_refusal(prompts.refusal, prompts) and rag.is_refusal("", prompts)
    correct = "The account does not contain any unpaid invoices."
    assert not rag.is_refusal(correct, prompts)
    refuses = evaluation.Arms(ws, evaluation.EvalSettings(arms=["base"]), ScriptedChat(prompts.refusal),
                              Embedder64(), None)
    answers = evaluation.Arms(ws, evaluation.EvalSettings(arms=["base"]), ScriptedChat(correct), Embedder64(), None)
    assert refuses.base(questions[0]).abstained and not answers.base(questions[0]).abstained
    assert "reply with exactly this sentence" in prompts.closed_book_system() and prompts.refusal in \
        prompts.closed_book_system()


def test_routing_accuracy_counts_only_questions_where_the_arms_disagree():
    def r(arm, qid, answer, gold="30 days", routed=None):
        res = evaluation.QuestionResult(arm, qid, "q", gold, "factual", answer, False)
        res.routed_to = routed
        return res
    saved = {"rag": {"1": r("rag", "1", "30 days"), "2": r("rag", "2", "no"), "3": r("rag", "3", "no"),
                     "4": r("rag", "4", "30 days")},
             "ft": {"1": r("ft", "1", "no"), "2": r("ft", "2", "30 days"), "3": r("ft", "3", "no"),
                    "4": r("ft", "4", "30 days")}}
    routed = [{"question_id": "1", "routed_to": "rag"}, {"question_id": "2", "routed_to": "rag"},
              {"question_id": "3", "routed_to": "ft"}, {"question_id": "4", "routed_to": "ft"}]
    out = evaluation.routing_accuracy(routed, saved)
    # Q1: only RAG right, routed to RAG (right pick). Q2: only FT right, routed to RAG (wrong pick).
    # Q3 both wrong and Q4 both right say nothing about routing: 1 of 2, over 2 of 4 questions.
    assert (out["routing_accuracy"], out["routing_accuracy_n"], out["arms_disagree_share"]) == (0.5, 2, 0.5)
    assert out["routing_accuracy_ci_low"] is None        # two values: no interval


def test_retrieval_ranks_ten_distinct_documents_and_the_tuned_defaults_are_named(prepared):
    ws, questions = prepared
    ctx = evaluation.build_arms(ws, evaluation.EvalSettings(arms=["rag"]))
    found = ctx._search(questions[0])
    assert len({h.doc_id for h in found.hits}) >= evaluation.RETRIEVAL_DEPTH
    run_id = evaluation.create_run(ws, questions[:5], evaluation.EvalSettings(arms=["rag"]))
    evaluation.run(ws, run_id, ctx)
    notes = evaluation.summarize(ws, run_id, ctx.embedder)["run"]["notes"]
    assert len(notes) == 1 and "chosen on the bundled sample's questions, and 100% of these" in notes[0]


def test_a_fine_tuned_model_without_a_price_costs_unknown_not_zero(prepared):
    from workbench.pricing import load_pricing

    ws, _ = prepared
    ctx = evaluation.Arms(ws, evaluation.EvalSettings(arms=["base"]), ScriptedChat("x"), Embedder64(), None)
    ctx.ft_ref = finetune.TrainedModel("ft:gpt-4o-mini-2024-07-18:org:s:1", "openai", "ft", False)
    assert ctx.ft_prices() == (0.30, 1.20)
    ctx.book = load_pricing().with_custom({"models": [{"id": "my-model", "input": 0.15, "output": 0.6,
                                                       "fine_tuning": {"training": 3.0}, "source": "s",
                                                       "as_of": "2026-11-01"}]}, source="custom")
    ctx.ft_ref = finetune.TrainedModel("ft:my-model:org:s:1", "openai", "ft", False)
    assert ctx.ft_prices() is None                       # was (0.0, 0.0): free inference
    rows = [evaluation.QuestionResult("ft", str(i), "q", "a", "factual", "a", False, cost_usd=None) for i in range(3)]
    m = evaluation.arm_metrics(rows, {})
    assert m["cost_per_query_usd"] is None and m["unpriced"] == 3


def test_eval_cli_fails_clearly_when_every_call_fails(openai_server, openai_providers, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Invoices\n\nInvoices are due in 30 days.")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "When are invoices due?", "answer": "in 30 days", "doc_ids": ["a.md"]}))
    out = tmp_path / "results.json"
    openai_server.inject({"status": 500}, times=100, path="/v1/chat")
    result = CliRunner().invoke(main, ["eval", "--docs", str(docs), "--qa", str(qa), "--arms", "rag",
                                       "--out", str(out)])
    assert result.exit_code != 0 and not isinstance(result.exception, TypeError), result.output
    assert "Error: every question failed for rag: the OpenAI-compatible server failed (500) while answering" \
        in result.output
    data = json.loads(out.read_text())
    assert (data["rag"]["questions"], data["rag"]["errors"]) == (1, 1)


def test_the_offline_sequential_hybrid_is_the_extractive_answerer_it_says_it_is(prepared):
    """With a language model as the chat role, the local stand-in's hybrid still quotes (as its label says)."""
    from workbench import index, providers
    from workbench.index import Retriever

    ws, questions = prepared
    embedder = providers.get_embedder()
    index.build_index(ws, embedder)
    ctx = evaluation.Arms(ws, evaluation.EvalSettings(arms=["ft_rag"]), ScriptedChat("a made-up reply"), embedder,
                          Retriever(ws, embedder))
    result = ctx.ft_rag(questions[0])
    assert result.answer != "a made-up reply" and "steering the extractive answerer" in result.provider
    quoted = result.answer.rsplit(" [", 1)[0].rstrip(".").replace("**", "")
    assert result.answer.endswith("]") and quoted in result.context.replace("**", "")   # a sentence it quoted


def test_a_run_whose_arms_use_different_models_says_so(prepared):
    from workbench.providers.extractive import ExtractiveAnswerer

    ws, questions = prepared
    settings = evaluation.EvalSettings(arms=["base", "ft"])
    ctx = evaluation.Arms(ws, settings, ExtractiveAnswerer(), Embedder64(), None)
    run_id = evaluation.create_run(ws, questions[:6], settings)
    evaluation.run(ws, run_id, ctx)
    notes = evaluation.summarize(ws, run_id)["run"]["notes"]
    assert any(n.startswith("The arms are answered by different models (Base model (no context): Extractive answerer")
               and "Fine-tuned: Local trainer (offline stand-in" in n for n in notes)
    one_model = evaluation.EvalSettings(arms=["base"])
    run_id = evaluation.create_run(ws, questions[:6], one_model)
    evaluation.run(ws, run_id, evaluation.Arms(ws, one_model, ExtractiveAnswerer(), Embedder64(), None))
    assert not any("different models" in n for n in evaluation.summarize(ws, run_id)["run"]["notes"])
