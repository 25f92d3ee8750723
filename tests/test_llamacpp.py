"""The local LLM: llama.cpp in-process with the bundled SmolLM2-135M-Instruct (a real, tiny model)."""
import threading

import pytest

from workbench import providers, rag
from workbench.errors import WorkbenchError
from workbench.index import Hit
from workbench.providers import llamacpp

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
