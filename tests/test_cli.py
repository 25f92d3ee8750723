"""The `workbench` command line."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


ISSUE_SCENARIO = """\
queries_per_month: 100000
prompt_tokens: 200        # system + user tokens per query, before retrieved context
output_tokens: 150
months: 12
start_date: 2026-11-29
fine_tuning: {model: gpt-4o-mini-2024-07-18, training_examples: 500, tokens_per_example: 400, epochs: auto, retrains_per_year: 4}
rag: {model: gpt-4o-mini, embedding_model: text-embedding-3-small, corpus_tokens: 2000000, chunk_tokens: 512, top_k: 4, monthly_churn: 0.1, vector_store: faiss-local}
"""


def test_estimate_json_has_the_documented_shape(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(ISSUE_SCENARIO)
    result = run("estimate", str(path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for opt in ("fine_tuning", "rag", "hybrid_sequential", "hybrid_routing"):
        row = data[opt]
        for key in ("setup_cost_usd", "monthly_cost_usd", "cost_per_query_usd", "total_cost_usd"):
            assert isinstance(row[key], float)
        assert row["latency_ms"]["total"] == pytest.approx(
            sum(v for k, v in row["latency_ms"].items() if k != "total"))
    ft = data["fine_tuning"]
    assert (ft["epochs"], ft["billed_training_tokens"], ft["training_cost_usd"]) == (3, 600_000, pytest.approx(1.8))
    assert ft["total_cost_usd"] == pytest.approx(297.0)
    assert data["rag"]["monthly_cost_usd"] == pytest.approx(79.324)
    pair = next(b for b in data["break_even"] if (b["a"], b["b"]) == ("fine_tuning", "rag"))
    assert pair["month"] == 1 and pair["monthly_queries"] is None


def test_estimate_text_with_tornado_and_workspace(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(ISSUE_SCENARIO)
    result = run("estimate", str(path), "--tornado", "fine_tuning,rag", "--workspace", "w")
    assert result.exit_code == 0, result.output
    assert "Fine-tuning: 3 epochs, 600,000 billed training tokens, $1.80 per training run" in result.output
    assert "WARNING: No new fine-tuning jobs" in result.output
    assert "Inputs that move the monthly difference most" in result.output
    from workbench import scenario as scenario_mod
    assert "Default scenario" in scenario_mod.saved_scenarios(workspace.open_workspace("w"))


def test_estimate_errors_name_the_problem(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text("queries_per_month: lots\n")
    result = CliRunner().invoke(main, ["estimate", str(path)])
    assert result.exit_code == 1
    assert f"{path}, line 1: field 'queries_per_month'" in result.output and "valid number" in result.output
    path.write_text("rag: {model: mystery}\n")
    result = CliRunner().invoke(main, ["estimate", str(path)])
    assert "no price for model 'mystery'" in result.output


def test_tokens_command(tmp_path):
    chat = tmp_path / "train.jsonl"
    chat.write_text('{"messages":[{"role":"user","content":"hello world"}]}\n\n'
                    '{"messages":[{"role":"user","content":"hello world"}]}\n')
    assert run("tokens", "--chat", str(chat)).output.split()[0] == "18"  # 2 x (3 + 1 + 2 + 3)
    assert run("tokens", "--text", "hello world").output.strip() == "2"
    result = CliRunner().invoke(main, ["tokens", "--text", "hi", "--model", "my-llama"])
    assert "no known OpenAI tokenizer" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages":[]}\n{"text": 1}\n')
    result = CliRunner().invoke(main, ["tokens", "--chat", str(bad)])
    assert result.exit_code == 1 and f"{bad}, line 2: expected a JSON object with a 'messages' list" in result.output


def test_ingest_index_ask(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "invoicing.md").write_text("# Invoicing\n\nNew invoices are due 30 days after the issue date.\n")
    (docs / "empty.txt").write_text("")
    (docs / "notes.py").write_text("print('not a document')")
    result = run("ingest", str(docs), "--workspace", "cli")
    assert result.exit_code == 0, result.output
    assert "added      invoicing.md" in result.output
    assert "rejected   empty.txt: the file is empty" in result.output
    assert "cli: 1 documents" in result.output
    result = run("index", "--workspace", "cli", "--chunking", "sentences", "--max-tokens", "100")
    assert "indexed 1 documents as 1 chunks" in result.output and "1 embedded, 0 reused" in result.output
    result = run("ask", "When are new invoices due?", "--workspace", "cli", "--json")
    data = json.loads(result.output)
    assert "30 days" in data["text"] and data["citations"][0]["doc_id"] == "invoicing.md"
    assert data["provider"].startswith("Extractive answerer (offline stand-in")
    text = run("ask", "When are new invoices due?", "--workspace", "cli").output
    assert "*[1] invoicing.md" in text and "latency" in text


@pytest.mark.local_llm
@pytest.mark.timeout(300)
def test_ask_streams_the_local_llm_s_answer_and_can_use_the_extractive_answerer(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "invoicing.md").write_text("# Invoicing\n\nNew invoices are due 30 days after the issue date.\n")
    run("ingest", str(docs), "--workspace", "llm")
    data = json.loads(run("ask", "When are new invoices due?", "--workspace", "llm", "--json").stdout)
    assert data["provider"] == "SmolLM2-135M-Instruct, local (tiny model, demo quality)" and data["generative"]
    assert data["output_tokens"] > 0 and data["timings"]["tokens_per_s"] > 0
    text = run("ask", "When are new invoices due?", "--workspace", "llm").stdout
    assert text.startswith(data["text"] + "\n")     # streamed piece by piece, the same answer at temperature 0
    assert "tokens/s (measured on this machine)" in text
    quoted = json.loads(run("ask", "When are new invoices due?", "--workspace", "llm", "--json",
                            "--chat", "extractive").stdout)
    assert "30 days" in quoted["text"] and quoted["provider"].startswith("Extractive answerer")


@pytest.mark.timeout(900)
def test_finetune_run_lora_from_the_cli(tmp_path):
    pytest.importorskip("peft", reason='the lora extra: pip install -e ".[lora]"')
    facts = tmp_path / "facts.jsonl"
    facts.write_text("\n".join(json.dumps({"question": f"What is release {n} called?", "answer": f"Release {n} is R{n}."})
                               for n in range(1, 31)))
    run("ingest", str(facts), "--qa", "--workspace", "lora-cli")
    out = run("finetune", "run", "--provider", "lora", "--workspace", "lora-cli", "--epochs", "1", "--lora-rank", "4")
    assert out.exit_code == 0 and ": succeeded -> lora-" in out.stdout
    assert "epoch 1 step 1/" in out.output and "s left" in out.output and "epoch 1: train loss" in out.output
    listed = json.loads(run("finetune", "status", "--workspace", "lora-cli", "--json").stdout)
    assert listed[0]["provider"] == "lora" and listed[0]["base_model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert listed[0]["metrics"][0]["valid_loss"] > 0


def test_ingest_corpus_jsonl_and_qa(tmp_path):
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text('{"id": "a", "title": "A", "text": "Alpha"}\n{"id": "b", "title": "B", "text": "Beta"}\n')
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "What is a?", "answer": "Alpha", "doc_ids": ["a"]}\n')
    assert "added      a" in run("ingest", str(corpus_file), "--workspace", "c2").output
    out = run("ingest", str(qa), "--qa", "--workspace", "c2").output
    assert "pairs      1 question/answer pairs" in out and "c2: 2 documents" in out


def test_finetune_commands(tmp_path):
    assert run("sample").exit_code == 0            # commands other than `sample` and `ingest` make no workspace
    result = run("finetune", "check", "--workspace", "sample", "--json")
    data = json.loads(result.output)
    assert data["report"]["ok"] and data["report"]["examples"] >= 150
    assert data["cost_preview"]["epochs"] == 3
    split = run("finetune", "split", "--workspace", "sample", "--test-share", "0.25", "--dev-share", "0.1")
    assert " train, " in split.output and " dev, " in split.output and " test (" in split.output
    assert "leakage groups" in split.output and "warning" not in split.output
    out = tmp_path / "train.csv"
    run("finetune", "export", "--workspace", "sample", "--format", "csv", "--out", str(out))
    assert out.read_text().startswith("question,answer,system")
    trained = run("finetune", "run", "--workspace", "sample", "--provider", "local", "--epochs", "3")
    assert trained.exit_code == 0 and ": succeeded -> local-" in trained.output
    job_id = trained.stdout.strip().splitlines()[-1].split(":")[0]
    status = run("finetune", "status", job_id, "--workspace", "sample")
    assert f"{job_id} (local" in status.output and "succeeded" in status.output
    assert "\n  epoch 3: train loss " in status.output and "step" not in status.output   # local runs count epochs
    listed = json.loads(run("finetune", "status", "--workspace", "sample", "--json").stdout)
    assert [(j["id"], j["provider"], j["state"]) for j in listed] == [(job_id, "local", "succeeded")]
    assert listed[0]["base_model"] and listed[0]["metrics"][0]["train_loss"] > 0
    resplit = run("finetune", "split", "--workspace", "sample", "--seed", "3")
    assert "warning: 1 trained model(s) exist. Compare checks each of them against the new split" in resplit.output
    pairs = tmp_path / "byo.jsonl"
    pairs.write_text('{"question": "What is the refund window?", "answer": "30 days"}\n')
    registered = run("finetune", "register", "support-lora", "--workspace", "sample", "--base-url",
                     "http://localhost:8000/v1", "--model", "support-lora", "--trained-on", str(pairs))
    assert registered.exit_code == 0 and "trained on 1 recorded pair(s)" in registered.output


def test_finetune_check_of_a_bad_file(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\nnot json\n')
    result = CliRunner().invoke(main, ["finetune", "check", "--file", str(bad), "--workspace", "w"])
    assert result.exit_code == 1
    assert "ERROR   invalid_json: line 2: malformed JSON (Expecting value at column 1)" in result.output
    assert "ERROR   example_missing_assistant_message: 1 example(s): no assistant message to learn from (rows 1)" \
        in result.output
    assert "ERROR   too_few_examples" in result.output


def test_finetune_openai_run_and_status(openai_server, openai_providers):
    run("ingest", "--workspace", "oa", str(__import__("pathlib").Path(__file__).parent.parent / "workbench" / "data"
                                          / "sample" / "qa.jsonl"), "--qa")
    run("finetune", "split", "--workspace", "oa")
    started = run("finetune", "run", "--workspace", "oa", "--provider", "openai", "--epochs", "2")
    assert started.exit_code == 0, started.output
    job_id = started.stdout.strip().splitlines()[-1].split(":")[0]
    for _ in range(6):
        status = run("finetune", "status", job_id, "--workspace", "oa")
    assert "succeeded -> ft:gpt-4o-mini-2024-07-18" in status.output


def test_ask_rebuilds_an_index_that_is_out_of_date(tmp_path):
    doc = tmp_path / "terms.md"
    doc.write_text("# Terms\n\nInvoices are due in 30 days.\n")
    run("ingest", str(doc), "--workspace", "stale")
    first = run("ask", "When are invoices due?", "--workspace", "stale")
    assert "no index yet; building it first" in first.stderr and "30 days" in first.stdout
    doc.write_text("# Terms\n\nInvoices are due in 45 days.\n")   # a new version: same chunk count, new text
    run("ingest", str(doc), "--workspace", "stale")
    again = run("ask", "When are invoices due?", "--workspace", "stale")
    assert "the index is out of date with the documents; rebuilding it first" in again.stderr
    assert "45 days" in again.stdout and "30 days" not in again.stdout


@pytest.mark.timeout(30)
def test_files_given_on_the_command_line_are_size_checked_before_reading(tmp_path):
    big = tmp_path / "big.jsonl"
    with big.open("wb") as fh:
        fh.truncate(60_000_001)                      # sparse: no disk used, and never read
    for args in (["tokens", str(big)], ["tokens", "--chat", str(big)], ["finetune", "check", "--file", str(big)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and result.output.strip().endswith(
            f"{big}: too large (60.0 MB; the limit is 50 MB)"), (args, result.output)
