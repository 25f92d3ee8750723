"""Broken config files fail with a message naming the file, the line, the key and what was expected."""
from pathlib import Path

import pytest

from workbench import providers
from workbench.config import config_dir, read_yaml
from workbench.decision import load_decision_config
from workbench.errors import WorkbenchError

SHIPPED = Path(__file__).resolve().parent.parent / "configs" / "decision.yaml"


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "decision.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_shipped_configs_load():
    assert config_dir().is_dir()
    cfg = load_decision_config()
    assert [o.id for o in cfg.options] == ["fine_tuning", "rag", "hybrid_sequential", "hybrid_routing"]
    providers.load_providers_config()


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = _broken(tmp_path, "  - id: task\n    label: The task",
                   "  - id: task\n    label: [The task")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    assert err.value.file == str(path)
    assert err.value.line is not None and err.value.line >= _line_of(path, "[The task")
    assert "invalid YAML" in str(err.value)


def test_unknown_key_names_the_key_and_the_keys_expected(tmp_path):
    path = _broken(tmp_path, "    weight: 1.5\n    text: How often", "    wieght: 1.5\n    text: How often")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    msg = str(err.value)
    assert err.value.field == "questions.3.wieght"
    assert err.value.line == _line_of(path, "wieght")
    assert "unknown key" in msg and "expected one of: id, group, factors, text, why, weight, answers" in msg
    assert str(path) in msg


def test_wrong_type_names_key_and_expectation(tmp_path):
    path = _broken(tmp_path, "    weight: 1.5\n    text: How often", "    weight: heavy\n    text: How often")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    assert err.value.field == "questions.3.weight"
    assert err.value.line == _line_of(path, "weight: heavy")
    assert "valid number" in str(err.value) and "'heavy'" in str(err.value)


def test_value_out_of_range_names_the_bound(tmp_path):
    path = _broken(tmp_path, "    weight: 1.5\n    text: How often", "    weight: 11\n    text: How often")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    assert err.value.field == "questions.3.weight"
    assert "less than or equal to 10" in str(err.value)


def test_points_out_of_range_are_found_inside_flow_mappings(tmp_path):
    path = _broken(tmp_path, "{id: rarely, label: Rarely (yearly or less), points: {fine_tuning: 2}}",
                   "{id: rarely, label: Rarely (yearly or less), points: {fine_tuning: 7}}")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    assert err.value.field == "questions.3.answers.0.points.fine_tuning"
    assert err.value.line == _line_of(path, "fine_tuning: 7")
    assert "less than or equal to 3" in str(err.value)


def test_missing_key(tmp_path):
    path = _broken(tmp_path, "confidence:\n  clear: 5\n  moderate: 2\n", "confidence:\n  clear: 5\n")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    assert err.value.field == "confidence.moderate"
    assert "required key is missing" in str(err.value)


def test_reference_to_an_unknown_group(tmp_path):
    path = _broken(tmp_path, "    group: knowledge\n    factors: [knowledge_freshness]",
                   "    group: knowlege\n    factors: [knowledge_freshness]")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    assert err.value.field == "questions.3.group"
    assert err.value.line == _line_of(path, "group: knowlege")
    assert "unknown group 'knowlege'" in str(err.value) and "expected one of" in str(err.value)


def test_preset_with_an_unknown_answer(tmp_path):
    path = _broken(tmp_path, "      task_specialization: general\n", "      task_specialization: generic\n")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    assert err.value.field == "presets.0.answers.task_specialization"
    assert "unknown answer 'generic'" in str(err.value)


def test_several_problems_are_all_listed(tmp_path):
    path = _broken(tmp_path, "confidence:\n  clear: 5\n  moderate: 2\n",
                   "confidence:\n  clear: -1\n  moderat: 2\n")
    with pytest.raises(WorkbenchError) as err:
        load_decision_config(path)
    msg = str(err.value)
    assert "problems" in msg and "confidence.clear" in msg and "confidence.moderat" in msg


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "decision.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(WorkbenchError, match="the file is empty"):
        load_decision_config(empty)
    with pytest.raises(WorkbenchError, match="file not found"):
        load_decision_config(tmp_path / "nope.yaml")


def test_yes_and_no_stay_strings():
    data, _ = read_yaml("answers.yaml", text="citations: no\ncore_and_periphery: yes\nflag: true\n")
    assert data == {"citations": "no", "core_and_periphery": "yes", "flag": True}


def test_providers_config_errors(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text("chat: {provider: extractive}\nopenai:\n  timeout_s: 0\n")
    with pytest.raises(WorkbenchError) as err:
        providers.load_providers_config(path)
    assert err.value.field == "openai.timeout_s" and err.value.line == 3
    assert "greater than 0" in str(err.value)


def test_config_dir_can_be_overridden(tmp_path, monkeypatch):
    (tmp_path / "decision.yaml").write_text(SHIPPED.read_text())
    monkeypatch.setenv("WORKBENCH_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path
    assert len(load_decision_config().questions) >= 12


def test_parsed_yaml_is_reused_only_for_the_same_text(tmp_path):
    from workbench.config import read_yaml

    path = tmp_path / "c.yaml"
    path.write_text("a: [1, 2]\n")
    first, _ = read_yaml(path)
    first["a"].append(3)                       # a caller's change never reaches the next reader
    assert read_yaml(path)[0] == {"a": [1, 2]}
    path.write_text("a: [5]\n")                # an edited file is parsed again
    assert read_yaml(path)[0] == {"a": [5]}
