"""The `workbench` command line."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from workbench import decision, workspace
from workbench.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_decide_json(tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("knowledge_freshness: daily\ncitations: required\ntraining_examples: none\n")
    result = run("decide", str(answers), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["recommendation"] == "rag"
    assert data["scores"] == {"fine_tuning": -9.5, "rag": 6.5, "hybrid_sequential": -1, "hybrid_routing": -2.5}
    assert data["drivers"][0] == {**data["drivers"][0], "question": "training_examples", "answer": "none",
                                  "contribution": 6}
    assert isinstance(data["flips"], list)


def test_decide_text_output_and_workspace_save(tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text("citations: no\n")  # `no` is an answer id, not a boolean
    result = run("decide", str(answers), "--preset", "brand_voice", "--workspace", "proj")
    assert result.exit_code == 0, result.output
    assert "Recommendation: Fine-tuning" in result.output
    assert "Top drivers:" in result.output
    assert decision.saved_answers(workspace.open_workspace("proj"))["citations"] == "no"


def test_decide_unknown_ids_name_them(tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text("citations: required\nfreshness: daily\nbudget: low\n")
    result = CliRunner().invoke(main, ["decide", str(answers), "--json"])
    assert result.exit_code == 1
    assert "unknown question id(s): freshness, budget" in result.output
    assert str(answers) in result.output
    answers.write_text("citations: always\n")
    result = CliRunner().invoke(main, ["decide", str(answers)])
    assert "field 'citations': unknown answer id 'always'; expected one of: no, nice, required" in result.output


def test_decide_broken_yaml(tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text("citations: [required\n")
    result = CliRunner().invoke(main, ["decide", str(answers)])
    assert result.exit_code == 1 and "invalid YAML" in result.output and "line" in result.output


def test_list_questions():
    result = run("decide", "--list-questions")
    assert "knowledge_freshness  [knowledge, weight 1.5]" in result.output
    assert "    daily: Daily or continuously" in result.output
    table = json.loads(run("decide", "--list-questions", "--json").output)
    assert len(table) == len(decision.load_decision_config().questions)


def test_decide_needs_something_to_decide():
    result = CliRunner().invoke(main, ["decide"])
    assert result.exit_code == 2 and "ANSWERS_FILE" in result.output


def test_workspace_commands():
    assert run("workspace", "create", "demo").exit_code == 0
    assert run("workspace", "list").output.split() == ["demo"]
    assert run("workspace", "delete", "demo", "--yes").exit_code == 0
    assert workspace.list_workspaces() == []


def test_console_script_is_installed():
    # Installed beside the interpreter running the tests (PATH may point at shims that lag behind).
    script = shutil.which("workbench", path=str(Path(sys.executable).parent)) or shutil.which("workbench")
    assert script, "install the package (see README) to get the `workbench` command"
    out = subprocess.run([script, "decide", "--preset", "policy_qa", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["recommendation"] == "rag"


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "decide" in out and "workspace" in out
