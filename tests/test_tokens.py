"""Token counting works offline from the shipped BPE files and counts chat framing as billed."""
import gzip
import socket

import pytest

from workbench import tokens
from workbench.errors import WorkbenchError


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    tokens.get_encoding.cache_clear()
    yield
    tokens.get_encoding.cache_clear()


def test_published_ids_with_sockets_disabled(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache: tiktoken would download
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokens.count("hello world", "gpt-4o-mini") == 2
    assert tokens.count("hello world", "gpt-3.5-turbo") == 2


def test_model_to_encoding():
    assert tokens.encoding_for_model("gpt-4o-mini-2024-07-18").encoding == "o200k_base"
    assert tokens.encoding_for_model("gpt-4.1-nano").encoding == "o200k_base"
    assert tokens.encoding_for_model("o3-mini").encoding == "o200k_base"
    assert tokens.encoding_for_model("gpt-3.5-turbo").encoding == "cl100k_base"
    assert tokens.encoding_for_model("gpt-4").encoding == "cl100k_base"
    assert tokens.encoding_for_model("text-embedding-3-small").encoding == "cl100k_base"
    assert tokens.encoding_for_model("ft:gpt-4o-mini-2024-07-18:acme::abc123").encoding == "o200k_base"
    assert tokens.encoding_for_model("gpt-4o").note is None


def test_unknown_model_falls_back_with_a_note():
    choice = tokens.encoding_for_model("llama-3.1-8b-instruct")
    assert choice.encoding == "o200k_base"
    assert "llama-3.1-8b-instruct" in choice.note and "approximate" in choice.note


def test_chat_messages_include_framing():
    # Cookbook rule: 3 per message + tokens of every string value (role included) + 3 to prime the reply.
    # o200k: "user" = 1 token, "hello world" = 2 -> 3 + 1 + 2 + 3 = 9.
    assert tokens.count_messages([{"role": "user", "content": "hello world"}], "gpt-4o-mini") == 9
    # Two messages, one with a name: (3+1+2) + (3+1+2+1 name token + 1 for the name value) + 3.
    enc = tokens.get_encoding("o200k_base")
    assert len(enc.encode("assistant")) == 1 and len(enc.encode("bob")) == 1
    msgs = [{"role": "user", "content": "hello world"},
            {"role": "assistant", "content": "hello world", "name": "bob"}]
    assert tokens.count_messages(msgs, "gpt-4o-mini") == 6 + 8 + 3
    # A non-string value (the fine-tuning `weight` key) is not text and is not counted.
    assert tokens.count_messages([{"role": "user", "content": "hello world", "weight": 1}]) == 9


def test_special_token_text_is_counted_as_plain_text():
    assert tokens.count("<|endoftext|>") > 1


def test_count_many_matches_count():
    texts = ["one two three", "", "Grüße aus Köln"]
    assert tokens.count_many(texts) == [tokens.count(t) for t in texts]


def test_count_many_counts_in_the_calling_thread(monkeypatch):
    # tiktoken's batch call starts a thread pool, three times slower than one thread on two cores
    import tiktoken.core

    def no_pool(*args, **kwargs):
        raise AssertionError("a thread pool was started")

    monkeypatch.setattr(tiktoken.core, "ThreadPoolExecutor", no_pool)
    # "hello world" is 2 tokens in both encodings (ids in test_published_ids_with_sockets_disabled); a lone
    # surrogate is counted as the replacement character, 1 token, as `count` does.
    texts = (t for t in ["hello world", "", "\ud800", "hello world"])
    assert tokens.count_many(texts, "gpt-4o-mini") == [2, 0, 1, 2]
    assert tokens.count_many(["hello world"], "gpt-3.5-turbo") == [2]
    assert tokens.count("\ud800") == 1


def test_corrupt_file_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "o200k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(b"aGVsbG8= 0\n"))
    monkeypatch.setattr(tokens, "DATA", tmp_path)
    tokens.get_encoding.cache_clear()
    try:
        with pytest.raises(WorkbenchError, match="tokenizer file is corrupt"):
            tokens.get_encoding("o200k_base")
    finally:
        tokens.get_encoding.cache_clear()
