"""Hostile YAML (alias bombs, deep nesting, huge integers, duplicate keys) fails fast with file and line."""
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from workbench import config
from workbench.cli import main
from workbench.config import read_yaml
from workbench.errors import WorkbenchError
from workbench.providers import load_providers_config
from workbench.scenario import load_scenario

EXPANDS = ("YAML aliases expand to over 10,000 nodes; aliases are refused beyond that "
           "to keep a small file from expanding without bound")


@pytest.fixture(autouse=True, params=["libyaml", "pure Python"])
def parser(request, monkeypatch):
    """Every case on both parsers under the limits: libyaml's (the default) and PyYAML's own (the fallback)."""
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml here")
        assert config.YamlLoader is config.CYamlLoader
    else:
        monkeypatch.setattr(config, "YamlLoader", config.PythonYamlLoader)
    monkeypatch.setattr(config, "_PARSED", {})    # nothing parsed by the other loader is reused
    return request.param


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(load, path: Path) -> WorkbenchError:
    with pytest.raises(WorkbenchError) as err:
        load(path)
    assert err.value.file == str(path)
    return err.value


@pytest.mark.timeout(20)
def test_billion_laughs_is_refused_by_the_cli_in_one_line(tmp_path):
    # Nine levels of nine aliases under a real question: ~300 bytes whose answer expands to 9**9 items
    # (printing it took 15 GB); the count stops it at the first alias of level five, on line 6.
    levels = "abcdefghi"
    lines = ["task_specialization:", "  - &a [x,x,x,x,x,x,x,x,x]"]
    lines += [f"  - &{name} [{','.join(['*' + prev] * 9)}]" for prev, name in zip(levels, levels[1:])]
    path = _write(tmp_path, "answers.yaml", "\n".join(lines) + "\n")
    assert path.stat().st_size < 400
    result = CliRunner().invoke(main, ["decide", str(path)])
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [f"Error: {path}, line 6: {EXPANDS}"]


@pytest.mark.timeout(20)
def test_merge_key_bomb_is_refused_before_merging(tmp_path):
    # `<<` merges copy key/value pairs when flattened, so nested merges blow up like nested aliases.
    lines = ["a: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}"]
    lines += [f"{name}: &{name} {{<<: [{', '.join(['*' + prev] * 9)}]}}" for prev, name in zip("abcdefgh", "bcdefghi")]
    path = _write(tmp_path, "scenario.yaml", "\n".join(lines) + "\n")
    assert str(_refused(load_scenario, path)) == f"{path}, line 4: {EXPANDS}"


@pytest.mark.timeout(20)
def test_more_than_100_aliases_are_refused_at_the_one_over(tmp_path):
    path = _write(tmp_path, "providers.yaml",
                  "chat: {provider: &p extractive}\nspare:\n" + "  - *p\n" * 101)
    err = _refused(load_providers_config, path)
    assert err.line == 103
    assert str(err) == (f"{path}, line 103: too many YAML aliases (over 100); aliases are refused beyond that "
                        f"to keep a small file from expanding without bound")


@pytest.mark.timeout(20)
def test_recursive_alias_is_refused(tmp_path):
    path = _write(tmp_path, "scenario.yaml", "name: loop\nrag: &r\n  nested: *r\n")
    assert str(_refused(load_scenario, path)) == (
        f"{path}, line 3: recursive YAML alias '*r' (it stands inside its own anchor)")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("value, line", [
    ("[" * 10_000 + "]" * 10_000, 3),
    ("{a: " * 10_000 + "1" + "}" * 10_000, 3),
    ("\n" + "".join(" " * i + "a:\n" for i in range(1, 100)) + " " * 100 + "a: 1\n", 67),
], ids=["lists", "flow-mappings", "block-mappings"])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path, value, line):
    path = _write(tmp_path, "scenario.yaml", f"name: deep\nmonths: 12\nrag: {value}\n")
    err = _refused(load_scenario, path)
    assert str(err) == f"{path}, line {line}: nested deeper than 64 levels; deeper nesting is refused"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("digits", ["1" * 5_000, "0x" + "f" * 5_000], ids=["decimal", "hex"])
def test_huge_integer_names_file_line_and_field(tmp_path, digits):
    path = _write(tmp_path, "scenario.yaml", f"name: big\nmonths: 12\nqueries_per_month: {digits}\n")
    err = _refused(load_scenario, path)
    assert (err.line, err.field) == (3, "queries_per_month")
    assert str(err) == (f"{path}, line 3: field 'queries_per_month': integer with 5,000 digits is too long "
                        f"(over 100 digits)")


@pytest.mark.timeout(20)
def test_duplicate_key_names_both_lines(tmp_path):
    path = _write(tmp_path, "scenario.yaml",
                  "name: dup\n# months of running\nmonths: 12\nprompt_tokens: 200\n"
                  "output_tokens: 150\nhourly_rate_usd: 80\nmonths: 24\n")
    assert str(_refused(load_scenario, path)) == f"{path}, line 7: duplicate key 'months' (first on line 3)"


@pytest.mark.timeout(20)
def test_duplicate_key_inside_a_nested_flow_mapping(tmp_path):
    path = _write(tmp_path, "providers.yaml", "chat: {provider: extractive}\nopenai: {timeout_s: 5, timeout_s: 50}\n")
    assert str(_refused(load_providers_config, path)) == (
        f"{path}, line 2: duplicate key 'timeout_s' (first on line 2)")


@pytest.mark.timeout(20)
def test_impossible_date_names_the_field(tmp_path):
    path = _write(tmp_path, "scenario.yaml", "name: leap\nstart_date: 2025-02-29\n")
    assert str(_refused(load_scenario, path)) == (
        f"{path}, line 2: field 'start_date': '2025-02-29' is not a valid date")


@pytest.mark.timeout(20)
def test_legitimate_anchors_aliases_and_merges_still_load(tmp_path):
    providers = _write(tmp_path, "providers.yaml",
                       "chat: &offline {provider: extractive}\n"
                       "fine_tuner:\n  <<: *offline\n  provider: local\n"
                       "embedder: {<<: *offline, provider: local}\n"
                       "openai: {timeout_s: &t 45, max_retries: 3}\n")
    cfg = load_providers_config(providers)
    assert (cfg.chat.provider, cfg.fine_tuner.provider, cfg.embedder.provider) == ("extractive", "local", "local")
    assert cfg.openai.timeout_s == 45
    scenario = _write(tmp_path, "scenario.yaml", "name: anchored\nprompt_tokens: &n 300\noutput_tokens: *n\n")
    s = load_scenario(scenario)
    assert (s.prompt_tokens, s.output_tokens) == (300, 300)
    data, _ = read_yaml("many.yaml", text="x: &x 1\nxs: [" + ", ".join(["*x"] * 100) + "]\n")
    assert data["xs"] == [1] * 100
