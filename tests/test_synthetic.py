"""Question/answer pairs generated from the documents: with a scripted generator plugin (exact, fast) and with
the bundled local model; every check, resume after a crash, review, the split, Compare and the memo."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from workbench import cli, corpus, evaluation, index, providers, rag, report, sample, splits, synthetic, workspace
from workbench.providers.extractive import ExtractiveAnswerer

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def ws():
    w = workspace.open_workspace("gen", create=True)
    sample.ensure_sample(w)
    return w


@pytest.fixture
def scripted(plugin):
    from workbench_fake_plugin import ScriptedQA

    return ScriptedQA


def _chunk(ws, chunk_id):
    with ws.db() as db:
        return dict(db.execute("SELECT * FROM chunks WHERE id = ?", (chunk_id,)).fetchone())


def test_kept_pairs_are_grounded_recorded_and_checked(ws, scripted):
    settings = synthetic.GenerationSettings(count=12, seed=3,
                                            kinds={"factual": 0.5, "paraphrase": 0.25, "unanswerable": 0.25})
    result = synthetic.generate(ws, settings, chat=scripted())
    assert result.planned == 12 and len(result.kept) + len(result.rejected) == 12
    kinds = {c.kind for c in result.kept}
    assert kinds == {"factual", "paraphrase", "unanswerable"}
    retriever = index.Retriever(ws, providers.get_embedder())
    for c in result.kept:
        assert c.status == "kept" and not c.reason and c.generator == "scripted question writer (test plugin)"
        chunk = _chunk(ws, c.chunk_id)
        assert chunk["doc_id"] == c.doc_id and chunk["text"] == c.passage
        record = c.to_dict()
        assert record["synthetic"] is True and record["kind"] == c.kind
        if c.kind == "unanswerable":
            assert c.answer == ""
            answer = rag.ask(c.question, retriever, ExtractiveAnswerer(), index.load_settings(ws).retrieval)
            assert answer.abstained                                       # retrieval does not answer it
        else:
            assert synthetic.support(c.answer, chunk["text"]) == 1.0       # a span of its own passage
            assert not synthetic.gives_away(c.question, c.answer)
    paraphrases = [c for c in result.kept if c.kind == "paraphrase"]
    assert all(p.source_question and p.group == next(f.group for f in result.kept if f.question == p.source_question)
               for p in paraphrases)


def test_replies_that_are_not_json_are_retried_once_then_rejected(ws, scripted):
    settings = synthetic.GenerationSettings(count=6, seed=1, kinds={"factual": 1.0})
    half = scripted(broken_every=2)          # every second reply is prose: the retry gets the JSON
    result = synthetic.generate(ws, settings, chat=half)
    assert half.calls > 6 and not [c for c in result.rejected if "JSON" in c.reason]
    never = scripted(broken_every=1)
    result = synthetic.generate(ws, settings.model_copy(update={"seed": 2}), chat=never)
    assert never.calls == 12 and [c.reason for c in result.rejected] == ["the reply was not the JSON asked for, twice"] * 6


def test_an_unanswerable_question_that_retrieval_answers_is_rejected(ws, scripted):
    chunks = synthetic.indexed_chunks(ws)
    trial = next(c for c in chunks if "14-day free trial" in c["text"])
    retriever = index.Retriever(ws, providers.get_embedder())

    def check(question):
        task = synthetic.Task(0, "unanswerable", trial)
        c = synthetic.Candidate("x", "r", 0, "unanswerable", question, "", trial["doc_id"], trial["id"],
                                trial["content_sha256"], trial["text"], "g", "kept")
        return synthetic._check(task, c, [], retriever, index.load_settings(ws).retrieval, ExtractiveAnswerer(),
                                scripted(), rag.load_prompts(), False)

    answered = check("How long is the free trial of the Business plan?")
    assert answered.startswith('retrieval answers it from getting-started.md: "Every new account starts with a '
                               '14-day free trial')
    assert check("Which moon base hosts the free trial festival?") == ""          # on topic, not answered
    assert check("Which composer wrote the fourth symphony?") == "off the passage's topic (no word in common)"
    # Through a run: the scripted generator's questions answered by their passage are caught too.
    result = synthetic.generate(ws, synthetic.GenerationSettings(count=4, seed=1, kinds={"unanswerable": 1.0}),
                                chat=scripted(unanswerable="@passage"))
    assert all(c.reason.startswith(("retrieval answers it", "retrieval finds a passage")) for c in result.rejected)
    assert result.rejected


def test_duplicates_of_existing_pairs_are_dropped(ws, scripted):
    settings = synthetic.GenerationSettings(count=3, seed=5, kinds={"factual": 1.0})
    first = synthetic.generate(ws, settings, chat=scripted())
    # The same passages again (another seed that draws them) make the same questions: all near-duplicates now.
    again = synthetic.generate(ws, settings.model_copy(update={"count": 4}), chat=scripted())
    repeated = [c for c in again.rejected if c.reason.startswith("a near-duplicate")]
    assert {c.question for c in repeated} >= {c.question for c in first.kept}
    # A hand-written pair with that wording also blocks it.
    corpus.ingest(ws, [("mine.jsonl", json.dumps({"question": first.kept[0].question, "answer": "x"}).encode())],
                  kind="qa")
    third = synthetic.generate(ws, settings.model_copy(update={"seed": 5, "count": 1}), chat=scripted(broken_every=0))
    assert not [c for c in third.kept if c.question == first.kept[0].question]


def test_a_crashed_run_resumes_and_makes_no_pair_twice(ws, scripted):
    settings = synthetic.GenerationSettings(count=8, seed=4, kinds={"factual": 0.5, "unanswerable": 0.5})

    class Crashing(scripted):
        def complete(self, *a, **kw):
            if self.calls == 5:
                raise RuntimeError("the machine went down")
            return super().complete(*a, **kw)

    crashing = Crashing()
    with pytest.raises(RuntimeError):
        synthetic.generate(ws, settings, chat=crashing)
    made = synthetic.candidates(ws)
    assert len(made) == 5                                  # each pair was stored as soon as it was made
    again = scripted()
    result = synthetic.generate(ws, settings, chat=again)
    assert again.calls == 3 and result.planned == 8
    stored = synthetic.candidates(ws)
    assert len(stored) == 8 and len({c.position for c in stored}) == 8
    stops = iter([False, True])
    stopped = synthetic.generate(ws, settings.model_copy(update={"seed": 9}), chat=scripted(),
                                 should_stop=lambda: next(stops, True))
    assert stopped.stopped and len(synthetic.candidates(ws, stopped.run_id)) == 1
    # New documents re-index the workspace: the same settings then make a new run (the plan points elsewhere).
    corpus.ingest(ws, [("new.md", b"# Nightly export\n\nInvoices are exported to the accounting system every night "
                                  b"at 02:00 in the workspace time zone.")])
    assert synthetic.generate(ws, settings, chat=scripted()).run_id != result.run_id


def test_accepted_pairs_join_the_workspace_and_the_split_keeps_a_chunks_pairs_together(ws, scripted):
    settings = synthetic.GenerationSettings(count=24, seed=7, kinds={"factual": 0.5, "paraphrase": 0.5})
    result = synthetic.generate(ws, settings, chat=scripted())
    assert synthetic.bulk(ws, "accepted", kind="factual") == sum(1 for c in result.kept if c.kind == "factual")
    synthetic.bulk(ws, "accepted", kind="paraphrase")
    dropped = result.kept[0]
    synthetic.review(ws, {dropped.id: {"status": "dropped"}, result.kept[1].id: {"question": "Edited: what is it?"}})
    added = synthetic.add_accepted(ws)
    pairs = [p for p in corpus.qa_pairs(ws) if synthetic.is_synthetic(p)]
    assert added == len(pairs) == len(result.kept) - 1 and "Edited: what is it?" in {p.question for p in pairs}
    assert all(p.category in ("factual", "paraphrase") and p.doc_ids for p in pairs)
    split = splits.make_split(ws)
    side_of = {i: side for side in ("train", "dev", "test") for i in getattr(split, side)}
    by_group: dict[str, set[str]] = {}
    for p in pairs:
        by_group.setdefault(p.group, set()).add(side_of[p.id])
    assert any(len([p for p in pairs if p.group == g]) > 1 for g in by_group)   # paraphrases share a chunk
    assert all(len(sides) == 1 for sides in by_group.values())
    # Added again (after another review) the set is replaced, never doubled.
    assert synthetic.add_accepted(ws) == added


def test_compare_and_the_memo_report_synthetic_and_hand_written_questions_apart(ws, scripted):
    result = synthetic.generate(ws, synthetic.GenerationSettings(count=16, seed=2, kinds={"factual": 1.0}),
                                chat=scripted())
    synthetic.bulk(ws, "accepted")
    synthetic.add_accepted(ws)
    questions = [p for p in corpus.qa_pairs(ws) if synthetic.is_synthetic(p)][:8] + \
        [p for p in corpus.qa_pairs(ws) if not synthetic.is_synthetic(p) and p.answer][:8]
    run_id = evaluation.create_run(ws, questions, evaluation.EvalSettings(arms=["rag"], concurrency=1))
    evaluation.run(ws, run_id, evaluation.build_arms(ws, evaluation.run_settings(ws, run_id)))
    summary = evaluation.summarize(ws, run_id)
    by = summary["by_origin"]["rag"]
    assert by["synthetic"]["n"] == 8 and by["hand-written"]["n"] == 8
    assert by["synthetic"]["f1"] is not None and by["hand-written"]["f1_n"] == 8
    md = report.to_markdown(report.build(ws))
    assert "Generated and hand-written questions apart" in md and "| RAG | synthetic | 8 |" in md
    assert f"{len(result.kept)} of the workspace's pairs are synthetic ({len(result.kept)} factual): written by " \
           "scripted question writer (test plugin)" in md


def test_generate_qa_from_the_cli(ws, plugin, tmp_path, monkeypatch):
    config = tmp_path / "providers.yaml"
    config.write_text("chat: {provider: scripted-qa}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(config))
    runner = CliRunner()
    args = ["generate-qa", "--workspace", "gen", "--count", "6", "--kinds", "factual=0.5,unanswerable=0.5",
            "--seed", "1", "--json"]
    dry = runner.invoke(cli.main, args + ["--dry-run"])
    assert dry.exit_code == 0, dry.output
    data = json.loads(dry.stdout)
    assert data["added"] is None and data["planned"] == 6 and data["pairs"]
    assert all(set(p) >= {"question", "answer", "doc_id", "chunk_id", "kind", "synthetic"} and p["synthetic"]
               for p in data["pairs"])
    assert all(r["reason"] for r in data["rejected"])
    assert not [p for p in corpus.qa_pairs(ws) if synthetic.is_synthetic(p)]
    added = json.loads(runner.invoke(cli.main, args).stdout)       # the same run, resumed: the pairs are added
    assert added["added"] == len(data["pairs"]) == len([p for p in corpus.qa_pairs(ws) if synthetic.is_synthetic(p)])
    text = runner.invoke(cli.main, args[:-1])
    assert "pairs kept by the checks" in text.stdout and "kept [factual]" in text.stdout
    bad = runner.invoke(cli.main, ["generate-qa", "--workspace", "gen", "--kinds", "facts=1"])
    assert bad.exit_code != 0 and "unknown kind(s) facts" in bad.output


@pytest.mark.local_llm
def test_the_bundled_local_model_always_replies_in_the_schema(ws):
    chat = providers.get_chat_model(providers.load_providers_config())
    assert "SmolLM2" in chat.label
    result = synthetic.generate(ws, synthetic.GenerationSettings(count=4, seed=1, kinds={"factual": 1.0}), chat=chat)
    assert result.planned == 4
    assert not [c for c in result.rejected if "JSON" in c.reason]   # the grammar makes every reply parse
    for c in result.kept:
        assert synthetic.support(c.answer, c.passage) >= synthetic.SUPPORT_SHARE


def test_plan_and_shares():
    s = synthetic.GenerationSettings(count=10, kinds={"factual": 0.6, "paraphrase": 0.2, "unanswerable": 0.2})
    assert synthetic.counts_by_kind(s) == {"factual": 6, "paraphrase": 2, "unanswerable": 2}
    # Paraphrases need factual questions to rephrase: never more of them.
    assert synthetic.counts_by_kind(s.model_copy(update={"kinds": {"paraphrase": 1.0}})) == \
        {"paraphrase": 5, "factual": 5}
    assert synthetic.parse_kinds("factual=0.6, unanswerable=0.4") == {"factual": 0.6, "unanswerable": 0.4}
    assert synthetic._markers("Tallyboard 2.5 release notes, released 7 March 2023") == [(0, 2, 5), (2023, 3, 7)]
    assert synthetic.is_question("How long is the trial") and not synthetic.is_question("Write a short answer.")


def test_generate_review_and_add_on_the_data_page(ws, plugin, tmp_path, monkeypatch, app_test):
    config = tmp_path / "providers.yaml"
    config.write_text("chat: {provider: scripted-qa}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(config))
    at = app_test("gen").run()
    at.switch_page("pages/data.py").run()
    assert any("scripted question writer (test plugin)" in c.value for c in at.caption)
    at.number_input(key="data_gen_count").set_value(8)
    at.slider(key="data_gen_share_paraphrase").set_value(0.0).run()
    at.button(key="data_gen_run").click().run()
    assert not at.exception and not at.error
    kept = [c for c in synthetic.candidates(ws) if c.status == "kept"]
    assert any(s.value == f"{len(kept)} of 8 pairs kept by the checks; review them below." for s in at.success)
    at.run()   # with the index built, the preview reads it: requests, tokens, and the time (a local model is free)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == "8" and metrics["Time (about)"].endswith(" min")
    at.selectbox(key="data_gen_bkind").set_value("factual").run()
    at.button(key="data_gen_bulk_accepted").click().run()
    factual = [c for c in synthetic.candidates(ws) if c.kind == "factual" and c.status == "accepted"]
    assert factual and len(factual) == sum(1 for c in kept if c.kind == "factual")
    at.button(key="data_gen_add").click().run()
    assert any(f"{len(factual)} synthetic pairs are now in the workspace" in s.value for s in at.success)
    assert len([p for p in corpus.qa_pairs(ws) if synthetic.is_synthetic(p)]) == len(factual)
    rejected = [c for c in synthetic.candidates(ws) if c.status == "rejected"]
    assert any(e.label == f"Rejected by the checks ({len(rejected)})" for e in at.expander) == bool(rejected)
