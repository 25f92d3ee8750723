"""Figures that come from a local model's own timings and the knobs for a slow model: no model needed here."""
import json

import pytest
from click.testing import CliRunner

from workbench import costs, evaluation, rag, scenario, workspace
from workbench.cli import main
from workbench.evaluation import QuestionResult
from workbench.providers import ChatResult
from workbench.shapes import QAPair


def _row(prompt_tokens, ttft_ms, tps, error=None):
    return QuestionResult(arm="rag", question_id=f"q{prompt_tokens}", question="q", gold="g", category="factual",
                          answer="a", abstained=False, prompt_tokens=prompt_tokens, error=error,
                          timings={"time_to_first_token_ms": ttft_ms, "tokens_per_s": tps})


def test_model_speed_is_a_line_through_the_model_s_own_timings():
    # Worked by hand: 10 ms fixed + 0.5 ms per prompt token -> 60, 110, 160 ms at 100, 200, 300 tokens.
    rows = [_row(100, 60, 90), _row(200, 110, 100), _row(300, 160, 120), _row(400, 9999, 1, error="boom")]
    speed = evaluation.model_speed(rows)
    assert speed["ttft_ms"] == pytest.approx(10) and speed["ms_per_1k_prompt_tokens"] == pytest.approx(500)
    assert speed["output_tokens_per_s"] == 100 and speed["n"] == 3            # median; the failed answer left out
    assert speed["time_to_first_token_ms_p50"] == 110 and speed["prompt_tokens_p50"] == 200
    # A fit that would start below zero goes through the origin instead: 1 ms per token exactly.
    through_origin = evaluation.model_speed([_row(100, 80, 50), _row(300, 300, 50)])
    assert through_origin["ttft_ms"] == 0 and through_origin["ms_per_1k_prompt_tokens"] == pytest.approx(
        (100 * 80 + 300 * 300) / (100 ** 2 + 300 ** 2) * 1000)
    # No timings (a hosted model, the extractive answerer): no speed.
    assert evaluation.model_speed([QuestionResult("rag", "q", "q", "g", "factual", "a", False)] * 3) is None


def test_measured_speeds_become_the_estimate_s_latency_inputs():
    speed = {"ttft_ms": 40.0, "ms_per_1k_prompt_tokens": 4000.0, "output_tokens_per_s": 100.0, "n": 70}
    measured = {"rag": {"provider": "SmolLM2-135M-Instruct, local (tiny model, demo quality)", "model_speed": speed},
                "fine_tuning": {"provider": "local stand-in", "model_speed": None}}
    overrides, notes = scenario.measured_speeds(measured)
    assert overrides.ft_model is None and overrides.rag_model.output_tokens_per_s == 100
    assert len(notes) == 1 and "measured on this machine with SmolLM2-135M-Instruct" in notes[0] and "70 answers" in notes[0]
    s = scenario.default_scenario().model_copy(update={"latency": overrides, "output_tokens": 50})
    rag_latency = costs.estimate(s).options["rag"].latency_ms
    prompt = costs.estimate(s).options["rag"].prompt_tokens_per_query
    assert rag_latency["time to first token"] == pytest.approx(40 + prompt / 1000 * 4000)
    assert rag_latency["generation"] == pytest.approx(50 / 100 * 1000)     # 50 output tokens at 100 tokens/s


def test_estimate_cli_takes_the_measured_speeds(tmp_path):
    ws = workspace.open_workspace("speeds", create=True)
    speed = {"ttft_ms": 40.0, "ms_per_1k_prompt_tokens": 4000.0, "output_tokens_per_s": 100.0, "n": 12}
    ws.set_state(evaluation.MEASURED_KEY, {"rag": {"provider": "SmolLM2", "model_speed": speed}})
    path = tmp_path / "s.yaml"
    path.write_text("name: demo\nqueries_per_month: 1000\n")
    out = CliRunner().invoke(main, ["estimate", str(path), "--workspace", "speeds", "--measured-speeds", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert "rag model speed measured on this machine with SmolLM2 (12 answers)" in data["measured_speeds"][0]
    assert data["rag"]["latency_ms"]["generation"] == pytest.approx(150 / 100 * 1000)  # 150 output tokens
    none = CliRunner().invoke(main, ["estimate", str(path), "--measured-speeds"])
    assert none.exit_code != 0 and "--measured-speeds needs --workspace" in none.output
    workspace.open_workspace("empty", create=True)
    missing = CliRunner().invoke(main, ["estimate", str(path), "--workspace", "empty", "--measured-speeds"])
    assert missing.exit_code != 0 and "no model speeds measured" in missing.output


def _pairs(answerable, unanswerable):
    return [QAPair(f"what is {i}?", f"answer {i}", id=f"a{i}") for i in range(answerable)] + \
        [QAPair(f"what is {i}?", "", id=f"u{i}") for i in range(unanswerable)]


def test_a_quick_run_samples_answerable_and_unanswerable_in_their_shares():
    pairs = _pairs(49, 21)
    sample = evaluation.sample_questions(pairs, 20)
    assert len(sample) == 20 and sum(1 for q in sample if q.answer) == 14         # 49/70 of 20
    assert sample == evaluation.sample_questions(pairs, 20)                       # seeded
    assert [q.id for q in sample] == [q.id for q in pairs if q in sample]         # order kept
    assert evaluation.sample_questions(pairs, 0) == pairs == evaluation.sample_questions(pairs, 500)
    assert len(evaluation.sample_questions(_pairs(3, 0), 2)) == 2


class _Chat:
    name, label, offline, model_id = "t", "t", True, "t"

    def __init__(self, generative=True):
        self.generative = generative


def test_replies_give_the_abstention_flag_in_either_form():
    prompts = rag.load_prompts()
    as_json = prompts.model_copy(update={"reply": "json"})
    chat = _Chat()
    said = lambda text: ChatResult(text, 1, 1, "t")  # noqa: E731
    assert rag.read_reply(said('{"answerable": true, "answer": "30 days"}'), as_json, chat) == ("30 days", False)
    assert rag.read_reply(said('{"answerable": false, "answer": ""}'), as_json, chat)[1] is True
    assert rag.read_reply(said("not json at all"), as_json, chat) == ("not json at all", True)
    assert rag.read_reply(said(prompts.refusal), prompts, chat)[1] is True
    assert rag.read_reply(said("Within 30 days [1]."), prompts, chat) == ("Within 30 days [1].", False)
    # The schema is asked only of a model that writes text; an answerer that only quotes replies in prose.
    assert as_json.schema_for(chat) == rag.REPLY_SCHEMA and as_json.schema_for(_Chat(generative=False)) is None
    assert rag.read_reply(said("Within 30 days [1]."), as_json, _Chat(generative=False))[1] is False


def test_worked_examples_come_before_the_question_in_the_reply_form():
    prompts = rag.load_prompts()
    messages = rag.build_messages(prompts, "When are invoices due?", [])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == prompts.rag.examples[0].answer and messages[-1]["content"].endswith(
        "Question: When are invoices due?")
    as_json = prompts.model_copy(update={"reply": "json"})
    assert json.loads(rag.build_messages(as_json, "q", [])[2]["content"]) == {
        "answerable": True, "answer": prompts.rag.examples[0].answer}
    declines = as_json.model_copy(update={"closed_book": as_json.closed_book.model_copy(update={
        "examples": [rag.Example(question="Who wrote it?", answer="{refusal}")]})})
    closed = declines.closed_book_messages("What is 2 + 2?")
    assert json.loads(closed[2]["content"]) == {"answerable": False, "answer": ""}
    assert closed[-1] == {"role": "user", "content": "What is 2 + 2?"}
    assert prompts.model_copy(update={"closed_book": declines.closed_book}).closed_book_messages("x")[2][
        "content"] == prompts.refusal
