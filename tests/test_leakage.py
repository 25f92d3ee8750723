"""No model is scored on what it learned from: stable pair ids, collisions, training records, the overlap check."""
import json
import random
import re
import sqlite3

import pytest
from click.testing import CliRunner

from workbench import corpus, evaluation, finetune, overlap, report, sample, splits, workspace
from workbench.cli import main
from workbench.parsing import QAPair
from workbench.providers.local_trainer import Hyperparameters


def _jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


ROWS = [{"question": f"What is the code for topic {i}?", "answer": f"{1000 + i}"} for i in range(5)]


def test_ids_follow_the_question_not_the_row():
    ws = workspace.open_workspace("ids", create=True)
    corpus.ingest(ws, [("qa.jsonl", _jsonl(ROWS))], kind="qa")
    before = {p.question: p.id for p in corpus.qa_pairs(ws)}
    edited = [{"question": "A new first question?", "answer": "new"}] + ROWS[::-1]
    corpus.ingest(ws, [("qa.jsonl", _jsonl(edited))], kind="qa")
    after = {p.question: p.id for p in corpus.qa_pairs(ws)}
    assert all(after[q] == i for q, i in before.items())    # on today's row-position ids, 4 of 5 moved
    assert len(set(after.values())) == 6 and after["A new first question?"] not in before.values()
    # Case and punctuation do not change a question's id; the source is part of it.
    assert corpus.pair_id("qa.jsonl", "What is the code?") == corpus.pair_id("qa.jsonl", "what is THE code")
    assert corpus.pair_id("qa.jsonl", "What is the code?") != corpus.pair_id("other.jsonl", "What is the code?")


def test_a_given_id_is_kept_and_collisions_replace_nothing():
    ws = workspace.open_workspace("clash", create=True)
    corpus.ingest(ws, [("a.jsonl", _jsonl([{"id": "k1", "question": "Refund window?", "answer": "30 days"}]))],
                  kind="qa")
    report_ = corpus.ingest(ws, [("b.jsonl", _jsonl([
        {"id": "k1", "question": "Something else?", "answer": "x"},
        {"id": "k2", "question": "Second?", "answer": "y"},
        {"id": "k2", "question": "Third?", "answer": "z"}]))], kind="qa")
    stored = {p.id: p for p in corpus.qa_pairs(ws)}
    assert stored["k1"].question == "Refund window?" and stored["k1"].source == "a.jsonl"   # not replaced
    assert stored["k2"].question == "Second?" and report_.pairs_added == 1 and len(stored) == 2
    messages = [str(p) for p in report_.problems]
    assert "b.jsonl, line 1: id 'k1' is already used by a pair from a.jsonl; this row was not stored " \
           "(give it another id)" in messages
    assert "b.jsonl, line 3: id 'k2' is used twice in this file (first on line 2); this row was not stored" in messages
    assert {p["line"] for p in corpus.problems(ws)} >= {1, 3}    # kept for the Data page


def test_overlap_check_exact_near_and_paraphrase():
    seen = [QAPair("How do I reset my password?", "Settings", id="t1", group="pw", source="qa.jsonl"),
            QAPair("Where is the invoice due date set?", "Billing", id="t2", source="qa.jsonl")]
    record = overlap.TrainingRecord.of(seen[:1], seen[1:])
    questions = [QAPair("how do i reset my PASSWORD", "Settings", id="e1"),            # same words: exact
                 QAPair("Where is the invoice due date set", "Billing", id="t2"),       # same id: exact
                 QAPair("Where exactly is the invoice due date set?", "B", id="e3"),    # 6 of 7 words: near
                 QAPair("Password reset steps?", "S", id="e4", group="pw", source="qa.jsonl"),  # paraphrase group
                 QAPair("Password reset steps?", "S", id="e5", group="pw", source="other.jsonl"),  # other file
                 QAPair("What colour is the logo?", "Blue", id="e6")]
    found = overlap.check(questions, record, "model M")
    assert found.exact == ["e1", "t2"] and sorted(found.near) == ["e3", "e4"] and found.count == 4
    assert found.message() == ("4 of 6 evaluation questions overlap what model M was trained or tuned on "
                               "(2 exact, 2 near-duplicate or paraphrase)")
    assert record.fingerprint == overlap.TrainingRecord.of(seen[:1], seen[1:]).fingerprint
    assert record.fingerprint != overlap.TrainingRecord.of(seen, []).fingerprint   # which side matters too


def test_overlap_check_finds_chinese_questions_seen_exactly_or_nearly():
    seen = [QAPair("如何重置我的密码？", "在设置页面", id="t1"), QAPair("发票什么时候到期？", "30天内", id="t2")]
    record = overlap.TrainingRecord.of(seen, [])
    questions = [QAPair("如何 重置我的密码", "x", id="e1"),          # same characters: exact
                 QAPair("如何才能重置我的密码？", "x", id="e2"),      # 8 of 10 characters: near
                 QAPair("退款需要多久？", "x", id="e3")]
    found = overlap.check(questions, record, "model M")
    assert found.exact == ["e1"] and found.near == ["e2"]


@pytest.fixture
def trained(tmp_path):
    ws = sample.open_sample()
    splits.make_split(ws)
    job = finetune.run_local(ws, Hyperparameters(epochs=3))
    return ws, job


def test_compare_refuses_a_model_on_what_it_saw_unless_allowed(trained):
    ws, job = trained
    side = splits.sides(ws, splits.saved_split(ws))
    settings = evaluation.EvalSettings(arms=["rag", "ft"])
    with pytest.raises(evaluation.OverlapError) as refused:
        evaluation.create_run(ws, side.train[:8] + side.dev[:2] + side.test[:2], settings)
    assert str(refused.value).startswith("10 of 12 evaluation questions overlap what Local trainer")
    assert evaluation.runs(ws) == []                                   # nothing was started
    # Without a fine-tuned arm nothing can overlap; on the test side nothing does.
    evaluation.create_run(ws, side.train[:3], evaluation.EvalSettings(arms=["rag"]))
    clean = evaluation.create_run(ws, side.test[:4], settings)
    assert evaluation.summarize(ws, clean)["run"]["overlap"] == 0
    allowed = evaluation.create_run(ws, side.train[:3] + side.test[:3], settings.model_copy(update={"allow_overlap": True}))
    evaluation.run(ws, allowed, evaluation.build_arms(ws, evaluation.run_settings(ws, allowed)))
    summary = evaluation.summarize(ws, allowed)
    assert (summary["run"]["overlap"], summary["run"]["contaminated"]) == (3, True)
    assert summary["run"]["settings"]["ft_model"] == job["id"]         # the model is fixed when the run is made
    memo = report.to_markdown(report.build(ws))
    assert "**Contaminated run:** 3 of 6 questions overlap what Local trainer" in memo
    assert "Contaminated run:" in report.to_html(report.build(ws))


def test_reuploading_shuffled_pairs_keeps_the_test_side_clean(trained):
    ws, _ = trained
    data = (sample.SAMPLE_DIR / "qa.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in data]
    for r in rows:
        r.pop("id")                      # ids from content, as for a file that gives none
    rng = random.Random(3)
    rng.shuffle(rows)
    fresh = workspace.open_workspace("reupload", create=True)
    docs, _ = sample.sample_files()
    corpus.ingest(fresh, docs)
    corpus.ingest(fresh, [("qa.jsonl", _jsonl(rows))], kind="qa")
    splits.make_split(fresh)
    finetune.run_local(fresh, Hyperparameters(epochs=3))
    test_before = {p.question for p in evaluation.default_questions(fresh)}
    extra = [{"question": f"Inserted question {i}?", "answer": f"inserted {i}"} for i in range(5)]
    rows = extra[:2] + rows + extra[2:]
    rng.shuffle(rows)
    corpus.ingest(fresh, [("qa.jsonl", _jsonl(rows))], kind="qa")
    questions = evaluation.default_questions(fresh)
    assert {p.question for p in questions} == test_before               # the saved split still means the same
    run_id = evaluation.create_run(fresh, questions, evaluation.EvalSettings(arms=["ft"]))
    assert evaluation.summarize(fresh, run_id)["run"]["overlap"] == 0


def _eval(tmp_path, *extra):
    docs = tmp_path / "corpus.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "title": f"Topic {i}", "text": f"The code for topic {i} is "
                                        f"{1000 + i}."}) + "\n" for i in range(12)))
    train = tmp_path / "train.jsonl"
    train.write_bytes(_jsonl([{"question": f"What is the code for topic {i}?", "answer": f"{1000 + i}"}
                              for i in range(12)]))
    qa = tmp_path / "qa.jsonl"
    qa.write_bytes(_jsonl([{"question": f"What is the code for topic {i}?", "answer": f"{1000 + i}",
                            "doc_ids": [f"d{i}"]} for i in range(3)]
                          + [{"question": f"Which number belongs to topic {i}?", "answer": f"{1000 + i}",
                              "doc_ids": [f"d{i}"]} for i in range(3, 6)]))
    out = tmp_path / "results.json"
    return CliRunner().invoke(main, ["eval", "--docs", str(docs), "--qa", str(qa), "--train", str(train), "--arms",
                                     "rag,ft", "--out", str(out), *extra]), out


def test_eval_cli_refuses_overlap_with_the_training_file(tmp_path):
    refused, out = _eval(tmp_path)
    assert refused.exit_code != 0 and not out.exists()
    assert re.fullmatch(
        r"Error: 3 of 6 evaluation questions overlap what Local trainer \(offline stand-in for a fine-tuned LLM\), "
        r"trained [0-9: -]+ was trained or tuned on \(3 exact, 0 near-duplicate or paraphrase\); refused \(pass "
        r"--allow-overlap to score it anyway, marked contaminated\)", refused.output.strip().splitlines()[-1])
    allowed, out = _eval(tmp_path, "--allow-overlap")
    assert allowed.exit_code == 0, allowed.output
    data = json.loads(out.read_text())
    assert (data["run"]["overlap"], data["run"]["contaminated"], data["run"]["questions"]) == (3, True, 6)
    assert len(data["ft"]["per_question"]) == 6 and "all 6 questions of qa.jsonl" in data["run"]["scored"]


def test_old_workspaces_get_stable_ids_and_training_records(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    db = sqlite3.connect(path / workspace.DB_NAME)
    workspace.migrate(db, workspace.MIGRATIONS[:4])
    now = 1.0
    for n, q in enumerate(("First question?", "Second question?", "Third question?"), 1):
        db.execute("INSERT INTO qa_pairs VALUES (?, ?, ?, 'a', '[]', '', '', ?, '', 'qa.jsonl', ?)",
                   (f"qa.jsonl#{n}", n, q, f"qa.jsonl#{n}", now))
    db.execute("INSERT INTO qa_pairs VALUES ('mine', 4, 'Given id?', 'a', '[]', '', '', 'mine', '', 'qa.jsonl', 1)")
    old_split = {"train": ["qa.jsonl#1", "qa.jsonl#2"], "validation": ["qa.jsonl#3", "mine"], "validation_share": 0.5,
                 "seed": 0, "groups": 4, "guarded_links": 0}
    db.execute("INSERT INTO state VALUES ('finetune_split', ?, 1)", (json.dumps(old_split),))
    db.execute("INSERT INTO jobs (id, provider, base_model, state, created_at, updated_at, hyperparameters, "
               "fine_tuned_model, split) VALUES ('local-1', 'local', 'x', 'succeeded', 1, 1, '{}', 'local-1', ?)",
               (json.dumps(old_split),))
    db.commit()
    db.close()
    ws = workspace.open_workspace("old", home=tmp_path)
    ids = {p.question: p.id for p in corpus.qa_pairs(ws)}
    assert ids["First question?"] == corpus.pair_id("qa.jsonl", "First question?") and ids["Given id?"] == "mine"
    split = splits.saved_split(ws)
    assert split.train == [ids["First question?"], ids["Second question?"]] and split.dev == []
    assert split.test == [ids["Third question?"], "mine"]
    record = finetune.trained_models(ws)[0].trained_on
    # It early-stopped on its old validation side, which Compare used to score: that side counts as seen.
    assert set(record.train_ids) == set(split.train) and set(record.dev_ids) == set(split.test)
    with pytest.raises(evaluation.OverlapError, match="2 of 2 evaluation questions overlap"):
        evaluation.create_run(ws, splits.sides(ws, split).test, evaluation.EvalSettings(arms=["ft"]))
