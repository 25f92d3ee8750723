"""Test connection: reach an OpenAI-compatible server (Ollama, LM Studio, vLLM, llama.cpp server, OpenAI),
list its models, and say clearly what is wrong: wrong URL, server down, model not pulled."""
import socket

import pytest
from click.testing import CliRunner

from workbench import providers
from workbench.cli import main
from workbench.errors import WorkbenchError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_the_server_s_models_are_listed_and_the_configured_ones_checked(openai_server, openai_providers):
    found = providers.check_connection()
    assert found.base_url == openai_server.base_url
    assert {"gpt-4o-mini", "text-embedding-3-small"} <= set(found.models)
    assert found.checked == {"embedder": "text-embedding-3-small", "chat": "gpt-4o-mini"}
    result = CliRunner().invoke(main, ["providers", "test"])
    assert result.exit_code == 0 and "chat: gpt-4o-mini is offered" in result.output


@pytest.mark.timeout(60)
def test_a_model_not_pulled_is_named_with_what_the_server_offers(openai_server, openai_providers):
    openai_providers.write_text(openai_providers.read_text().replace("model: gpt-4o-mini", "model: llama3.2:1b"))
    with pytest.raises(WorkbenchError) as err:
        providers.check_connection()
    assert str(err.value).startswith(f"the server at {openai_server.base_url} does not offer the model 'llama3.2:1b' "
                                     "(pull or load it first, e.g. `ollama pull llama3.2:1b`); it offers: ")


@pytest.mark.timeout(60)
def test_a_server_that_is_down_is_a_clear_one_line_error(openai_providers):
    text = openai_providers.read_text()
    start = text.index("base_url: '") + len("base_url: '")
    openai_providers.write_text(text[:start] + f"http://127.0.0.1:{_free_port()}/v1" + text[text.index("'", start):])
    result = CliRunner().invoke(main, ["providers", "test"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(
        "Error: could not connect to the OpenAI-compatible server while listing the models at http://127.0.0.1:")


@pytest.mark.timeout(120)
def test_the_sidebar_button_tests_the_connection(app_test, openai_server, openai_providers):
    at = app_test().run()
    at.button(key="providers_test").click().run()
    assert not at.exception
    assert any("answers:" in s.value and "chat: gpt-4o-mini is offered" in s.value for s in at.success)
