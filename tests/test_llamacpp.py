"""The local LLM: llama.cpp in-process with the bundled SmolLM2-135M-Instruct (a real, tiny model)."""
import json
import threading

import pytest

from workbench import providers, rag
from workbench.errors import WorkbenchError
from workbench.index import Hit
from workbench.providers import llamacpp
from workbench.shapes import QAPair

pytest.importorskip("xllamacpp", reason="xllamacpp is a dependency: pip install -e .")
try:
    llamacpp.bundled_model()
except WorkbenchError as exc:  # the model file is installed by the README's commands
    pytest.skip(f"bundled model not installed: {exc}", allow_module_level=True)

PASSAGE = [{"role": "system", "content": "Reply with the shortest exact phrase copied from the passage."},
           {"role": "user", "content": "Passage: New invoices are due 30 days after the issue date.\n"
                                       "Question: How many days after the issue date are new invoices due?"}]


@pytest.fixture
def chat(tmp_path, monkeypatch):
    path = tmp_path / "providers.yaml"
    path.write_text("chat: {provider: llamacpp}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    return providers.get_chat_model()


@pytest.mark.timeout(120)
def test_the_bundled_model_answers_deterministically_and_says_what_it_is(chat):
    assert chat.label == "SmolLM2-135M-Instruct, local (tiny model, demo quality)" and chat.offline and chat.generative
    first, second = chat.complete(PASSAGE, max_tokens=24), chat.complete(PASSAGE, max_tokens=24)
    assert first.text and first.text == second.text                       # temperature 0
    assert first.prompt_tokens == second.prompt_tokens > 20 and 0 < first.completion_tokens <= 24
    assert first.timings["tokens_per_s"] > 0 and first.timings["time_to_first_token_ms"] > 0


@pytest.mark.timeout(120)
def test_max_tokens_is_honoured_exactly(chat):
    short = chat.complete([{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
                          max_tokens=3)
    assert short.completion_tokens == 3


@pytest.mark.timeout(120)
def test_two_threads_share_one_loaded_model(chat):
    other = providers.get_chat_model()
    assert other.loaded() is chat.loaded()                     # loaded once per process
    answers = [None, None]

    def ask(i, model):
        answers[i] = model.complete(PASSAGE, max_tokens=16).text
    threads = [threading.Thread(target=ask, args=(i, m)) for i, m in enumerate((chat, other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers[0] and answers[0] == answers[1]


@pytest.mark.timeout(120)
def test_the_context_window_guard_uses_the_model_s_real_window(chat):
    hits = [Hit(i, "d.md", "D", "", "word " * 500, 500, 1.0, 0.5, i + 1) for i in range(5)]
    messages = rag.build_messages(rag.load_prompts(), "What is it?", hits)
    with pytest.raises(WorkbenchError, match="would overflow SmolLM2-135M-Instruct's context window of 2,048 tokens"):
        rag.check_context(messages, chat.model_id, chat.context_window, 400)


def test_a_wrong_file_or_path_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / llamacpp.BUNDLED_FILE
    fake.write_bytes(b"GGUF not really")
    with pytest.raises(WorkbenchError, match="the bundled model file is not the one expected"):
        llamacpp._check_sha256(fake, fake.stat().st_size, fake.stat().st_mtime)
    path = tmp_path / "providers.yaml"
    path.write_text(f"chat: {{provider: llamacpp, model_path: '{tmp_path / 'missing.gguf'}'}}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    with pytest.raises(WorkbenchError, match="no GGUF file at .*missing.gguf"):
        providers.get_chat_model()


@pytest.mark.timeout(120)
def test_tokens_stream_as_they_are_generated_and_add_up_to_the_answer(chat):
    pieces = []
    streamed = chat.complete(PASSAGE, max_tokens=24, on_token=pieces.append)
    plain = chat.complete(PASSAGE, max_tokens=24)
    assert len(pieces) > 1 and "".join(pieces) == streamed.text == plain.text
    assert streamed.completion_tokens == plain.completion_tokens and streamed.timings["tokens_per_s"] > 0


@pytest.mark.timeout(120)
def test_a_reply_constrained_to_a_json_schema_always_parses(chat):
    from workbench import evaluation

    asks = ["Is the sky green?", "Grade this: the answer 'Paris' to 'capital of France?' with reference 'Paris'.",
            "Write a poem about invoices."]
    for ask in asks:
        reply = chat.complete([{"role": "system", "content": evaluation.JUDGE_SYSTEM},
                               {"role": "user", "content": ask}], max_tokens=50, schema=evaluation.JUDGE_SCHEMA)
        data = json.loads(reply.text)
        assert set(data) == {"correct", "faithful"} and all(isinstance(v, bool) for v in data.values())


@pytest.mark.timeout(180)
def test_the_abstention_flag_on_an_unanswerable_question(chat):
    """With the JSON reply form and a declining worked example, the model's own flag is the abstention."""
    shipped = rag.load_prompts()
    prompts = shipped.model_copy(update={"reply": "json", "rag": shipped.rag.model_copy(update={"examples": [
        *shipped.rag.examples, rag.Example(context="[1] Billing FAQ\nRefunds go back to the original card within 5 "
                                                  "business days.", question="Who founded the company?",
                                           answer="{refusal}")]})})
    hits = [Hit(0, "billing.md", "Billing", "Invoices", "New invoices are due 30 days after the issue date.",
                12, 1.0, 0.8, 1)]

    def answer(question):
        messages = rag.build_messages(prompts, question, hits)
        return rag.read_reply(chat.complete(messages, 64, schema=prompts.schema_for(chat)), prompts, chat)
    text, declined = answer("What is the capital of Mongolia?")
    assert declined and text == prompts.refusal
    text, declined = answer("When are new invoices due?")
    assert not declined and "30 days" in text


@pytest.mark.timeout(300)
def test_the_judge_on_the_local_model_never_loses_a_verdict_to_bad_json(chat, tmp_path):
    from workbench import evaluation, workspace
    from workbench.evaluation import QuestionResult

    ws = workspace.open_workspace("judged", create=True)
    questions = [QAPair(f"Question {i}?", "30 days", id=f"q{i}") for i in range(4)]
    run_id = evaluation.create_run(ws, questions, evaluation.EvalSettings(arms=["rag"]))
    for i, q in enumerate(questions):
        evaluation._save(ws, run_id, QuestionResult(
            "rag", q.id, q.question, q.answer, "factual", ["30 days [1].", "Never.", "Within 30 days.", "Blue."][i],
            False, context="New invoices are due 30 days after the issue date."))
    report = evaluation.judge(ws, run_id, chat, concurrency=2)
    assert report["rag"]["judged"] == 4     # every answer got a verdict that parsed


@pytest.mark.timeout(120)
def test_stop_sequences_end_the_answer():
    ask = [{"role": "user", "content": "Describe a rainbow in one sentence."}]
    free = llamacpp.LlamaCppChat(llamacpp.LlamaCppSettings(stop=[])).complete(ask, max_tokens=40)
    word = free.text.split()[len(free.text.split()) // 2]          # a word in the middle of the free answer
    stopped = llamacpp.LlamaCppChat(llamacpp.LlamaCppSettings(stop=[word])).complete(ask, max_tokens=40)
    assert stopped.text == free.text[:free.text.index(word)] and stopped.completion_tokens < free.completion_tokens
    assert llamacpp.LlamaCppSettings().stop == ["Question:", "Context:"]   # the shipped templates' next turn


@pytest.mark.timeout(120)
def test_a_prompt_over_the_real_window_is_refused_with_the_model_s_own_count(chat):
    with pytest.raises(WorkbenchError, match=r"would overflow SmolLM2-135M-Instruct's context window of 2,048 tokens "
                                             r"by [\d,]+ \(prompt [\d,]+ tokens by the model's own tokenizer\)"):
        chat.complete([{"role": "user", "content": "word " * 3000}], max_tokens=10)
