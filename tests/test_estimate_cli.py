"""`workbench estimate` with the shipped example scenarios (configs/scenarios/)."""
import json

import pytest
from click.testing import CliRunner

from workbench import scenario
from workbench.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["estimate", *args])


def test_help_names_the_presets():
    result = run("--help")
    assert result.exit_code == 0
    assert "--preset [default|internal-tool|support-bot]" in result.output


def test_internal_tool_preset_worked_by_hand():
    result = run("--preset", "internal-tool", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["scenario"]["name"] == "Internal tool, small team"
    rag = data["rag"]
    # 3,000 queries x ((300 + 4 x 512) x $0.15 + 250 x $0.60) / 1M = $1.5066 of inference; query embedding
    # 3,000 x 50 x $0.02/1M = $0.003; re-embedding 5 % of 800,000 tokens at $0.02/1M = $0.0008; the index lives
    # in the app's process, so no machine.
    assert rag["monthly_by_component"]["vector store"] == 0
    assert rag["monthly_cost_usd"] == pytest.approx(1.5066 + 0.003 + 0.0008)
    assert rag["setup_cost_usd"] == pytest.approx(800_000 * 0.02 / 1e6)          # $0.016 to embed the corpus
    ft = data["fine_tuning"]
    # 200 examples x 500 tokens x 3 epochs = 300,000 tokens at 2,000 tokens/s = 150 s of an $0.80/h L4.
    assert (ft["epochs"], ft["billed_training_tokens"]) == (3, 300_000)
    assert ft["training_cost_usd"] == pytest.approx(150 / 3600 * 0.80)


def test_text_output_of_a_preset_and_a_file_over_it(tmp_path):
    result = run("--preset", "support-bot")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Support bot, high volume: 2,000,000 queries/month over 24 months")
    # A file given with a preset changes only the keys it names.
    path = tmp_path / "smaller.yaml"
    path.write_text("queries_per_month: 20000\n")
    data = json.loads(run("--preset", "support-bot", str(path), "--json").output)
    assert data["scenario"]["queries_per_month"] == 20_000
    assert (data["scenario"]["months"], data["scenario"]["rag"]["vector_store"]) == (24, "hosted-vector-db")


def test_without_a_file_or_preset_it_says_what_to_give():
    result = run()
    assert result.exit_code == 2
    assert "give a scenario file or --preset NAME (default, internal-tool, support-bot)" in result.output
    assert "'nope' is not one of 'default', 'internal-tool', 'support-bot'" in run("--preset", "nope").output


def test_the_default_preset_is_the_default_scenario():
    assert scenario.load_preset("default") == scenario.default_scenario()
