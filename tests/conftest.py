"""Shared fixtures: every test gets its own workspace home, and configs are read from the checkout."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def workbench_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "workspaces"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.delenv("WORKBENCH_CONFIG_DIR", raising=False)
    return home


@pytest.fixture(scope="session", autouse=True)
def _quick_providers(tmp_path_factory):
    """Set for the whole session, so module-scoped fixtures that run evaluations get it too."""
    path = tmp_path_factory.mktemp("providers") / "providers-quick.yaml"
    path.write_text("chat: {provider: extractive}\n")
    before = os.environ.get("WORKBENCH_PROVIDERS")
    os.environ["WORKBENCH_PROVIDERS"] = str(path)
    yield path
    if before is None:
        os.environ.pop("WORKBENCH_PROVIDERS", None)
    else:
        os.environ["WORKBENCH_PROVIDERS"] = before


@pytest.fixture(autouse=True)
def quick_answerer(request, _quick_providers, monkeypatch):
    """Chat by the extractive answerer, unless a test is marked `local_llm` (the shipped providers.yaml).

    The bundled local LLM takes seconds per RAG question on 2 cores and most tests score dozens of
    questions; the tests marked local_llm run it through the library, the pages and the browser.
    """
    if request.node.get_closest_marker("local_llm"):
        monkeypatch.delenv("WORKBENCH_PROVIDERS", raising=False)
    else:
        monkeypatch.setenv("WORKBENCH_PROVIDERS", str(_quick_providers))


@pytest.fixture
def app_test(monkeypatch):
    """Build an AppTest of the app, with a timeout fit for a slow CI machine."""
    import streamlit.testing.v1.app_test as app_test_module
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    # AppTest resets PagesManager.uses_pages_directory before every run, so with a pages/ folder beside
    # app.py it reruns the page file alone (legacy multipage mode) instead of app.py with st.navigation,
    # as the server does. Keep the reset on a subclass so the flag the runner reads stays False.
    class NavigationPagesManager(PagesManager):
        pass

    monkeypatch.setattr(app_test_module, "PagesManager", NavigationPagesManager)
    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)

    def make(workspace: str | None = None) -> AppTest:
        """The app, opened on the sample workspace or on the named (empty, created) one."""
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        if workspace:
            from workbench.workspace import open_workspace

            open_workspace(workspace, create=True)
            at.session_state["workspace_select"] = workspace
        return at

    return make


@pytest.fixture
def openai_server():
    """A local OpenAI-compatible server on 127.0.0.1 with fault injection (see tests/openai_server.py)."""
    from openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server
        assert not server.errors, server.errors


@pytest.fixture
def openai_providers(openai_server, tmp_path, monkeypatch):
    """Providers config pointing every role at the local test server; returns the config path."""
    path = tmp_path / "providers.yaml"
    path.write_text(
        "embedder: {provider: openai, model: text-embedding-3-small}\n"
        "chat: {provider: openai, model: gpt-4o-mini}\n"
        "fine_tuner: {provider: openai}\n"
        f"openai: {{base_url: '{openai_server.base_url}', api_key_env: WB_TEST_KEY, timeout_s: 2, max_retries: 2}}\n")
    monkeypatch.setenv("WB_TEST_KEY", openai_server.api_key)
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))
    return path


@pytest.fixture
def hosted_services(openai_server, monkeypatch):
    """Together AI and Fireworks AI pointed at the local test server, through the environment as a user would."""
    monkeypatch.setenv("TOGETHER_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("TOGETHER_API_KEY", openai_server.api_key)
    monkeypatch.setenv("FIREWORKS_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("FIREWORKS_INFERENCE_URL", openai_server.base_url.replace("/v1", "/inference/v1"))
    monkeypatch.setenv("FIREWORKS_API_KEY", openai_server.api_key)
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", openai_server.fireworks_account)
    return openai_server


PLUGINS = Path(__file__).parent / "plugins"


def install_plugin(site: Path, name: str, entry: str) -> None:
    """What `pip install` leaves for a package with one entry point: its dist-info folder."""
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[workbench.providers]\n{entry}\n")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The test plugin (tests/plugins/workbench_fake_plugin.py) installed as a package with an entry point."""
    from workbench.providers import REGISTRY

    site = tmp_path / "site"
    install_plugin(site, "workbench_fake_plugin", "fake = workbench_fake_plugin:register")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(PLUGINS))
    REGISTRY.reset()
    yield site
    REGISTRY.reset()
