"""Backends are plugins: a package registers through the `workbench.providers` entry-point group and is used
end to end, through the library and the CLI, with its own validated settings."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench import corpus, index, providers, rag, workspace
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.providers import REGISTRY

from conftest import install_plugin



def _config(tmp_path, monkeypatch, text: str) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    return path


def test_a_plugin_backend_is_registered_and_configured_like_a_built_in(plugin, tmp_path, monkeypatch):
    assert {"local", "openai", "fake-hash"} <= {b.name for b in REGISTRY.backends("embedder")}
    path = _config(tmp_path, monkeypatch, "embedder: {provider: fake-hash, dimensions: 16}\n"
                                          "chat: {provider: scripted, reply: 'Due in 30 days [1]'}\n")
    cfg = providers.load_providers_config()
    labels = {p.role: p.label for p in providers.active_providers(cfg)}
    assert labels["embedder"] == "fake hashing embedder (test plugin)" and labels["chat"].startswith("scripted")
    assert providers.get_embedder(cfg).dimensions == 16
    path.write_text("embedder: {provider: fake-hash, dimensions: 16, colour: blue}\n")
    with pytest.raises(WorkbenchError) as bad:
        providers.load_providers_config()
    assert str(bad.value).startswith(f"{path}, line 1: field 'embedder.colour'")
    path.write_text("chat:\n  provider: scriptd\n")
    with pytest.raises(WorkbenchError) as unknown:
        providers.load_providers_config()
    assert str(unknown.value) == (f"{path}, line 2: field 'chat.provider': unknown chat provider 'scriptd'; "
                                  "registered: extractive, llamacpp, openai, scripted, scripted-qa")


def test_a_plugin_backend_answers_through_the_library_and_the_cli(plugin, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, "embedder: {provider: fake-hash, dimensions: 32}\n"
                                   "chat: {provider: scripted, reply: 'Invoices are due in 30 days [1]'}\n")
    ws = workspace.open_workspace("plugged", create=True)
    corpus.ingest(ws, [("terms.md", b"# Terms\n\nInvoices are due in 30 days.\n\n## Refunds\n\nWithin 14 days.")])
    cfg = providers.load_providers_config()
    embedder = providers.get_embedder(cfg)
    report = index.build_index(ws, embedder)
    assert report.embedder == "fake hashing embedder (32 dims, test plugin)"
    answer = rag.ask("When are invoices due?", index.Retriever(ws, embedder), providers.get_chat_model(cfg),
                     index.load_settings(ws).retrieval)
    assert (answer.text, answer.provider, answer.cost_usd) == ("Invoices are due in 30 days [1]",
                                                             "scripted chat model (test plugin)", 0.0)
    assert answer.citations[0].used and answer.citations[0].doc_id == "terms.md"
    result = CliRunner().invoke(main, ["ask", "When are invoices due?", "--workspace", "plugged"])
    assert result.exit_code == 0, result.output
    assert "Invoices are due in 30 days [1]\n-- scripted chat model (test plugin)" in result.output


def test_a_broken_plugin_is_reported_and_the_others_still_load(plugin, tmp_path, monkeypatch):
    install_plugin(plugin, "workbench_broken_plugin", "broken = workbench_no_such_module:register")
    REGISTRY.reset()
    assert "fake-hash" in {b.name for b in REGISTRY.backends("embedder")}
    assert any(k.startswith("broken (workbench_no_such_module:register)") and "ModuleNotFoundError" in v
               for k, v in REGISTRY.broken.items())


def test_every_built_in_backend_implements_its_role_s_protocol(tmp_path):
    cfg = providers.ProvidersConfig()
    protocols = {"embedder": providers.Embedder, "chat": providers.ChatModel, "fine_tuner": providers.FineTuner}
    seen = []
    for role, protocol in protocols.items():
        for backend in REGISTRY.backends(role):
            if backend.why_unavailable():
                continue
            made = backend.factory(cfg.settings(role, backend.name), cfg)
            assert isinstance(made, protocol), (role, backend.name)
            seen.append((role, backend.name))
    for backend in REGISTRY.backends("vector_store"):
        if backend.why_unavailable():
            continue
        store = backend.factory(cfg.settings("vector_store", backend.name), cfg).open(tmp_path / backend.name, 4,
                                                                                       False, True)
        assert isinstance(store, providers.VectorStore), backend.name
        store.close()
        seen.append(("vector_store", backend.name))
    assert {("embedder", "local"), ("embedder", "openai"), ("chat", "extractive"), ("chat", "openai"),
            ("fine_tuner", "local"), ("fine_tuner", "openai"), ("vector_store", "faiss")} <= set(seen)
