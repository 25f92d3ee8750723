"""Question/answer generation on this machine with the bundled local model: pairs per minute and the share
the checks keep, on the sample's documents; then RAG's F1 on the generated pairs next to its F1 on the
hand-written test questions (same arm, same model).

Run: python -m pytest tests/benchmarks/test_generate_qa.py -s
"""
import pytest

from workbench import corpus, evaluation, index, providers, sample, splits, synthetic, workspace

pytest.importorskip("xllamacpp")


@pytest.mark.local_llm
def test_generation_rate_share_kept_and_rag_on_generated_pairs(tmp_path, timed_compare):
    ws = workspace.open_workspace("sample", home=tmp_path, create=True)
    sample.ensure_sample(ws)
    index.build_index(ws, providers.get_embedder())
    chat = providers.get_chat_model()
    settings = synthetic.GenerationSettings(count=60, seed=0, kinds={"factual": 0.6, "paraphrase": 0.15,
                                                                      "changed": 0.05, "unanswerable": 0.2})
    result = synthetic.generate(ws, settings, chat=chat)
    made = result.kept + result.rejected
    per_minute = len(made) / result.seconds * 60
    print(f"\n{chat.label}: {len(made)} candidates in {result.seconds:.0f} s = {per_minute:.1f} per minute; "
          f"kept {len(result.kept)} ({len(result.kept) / len(made):.0%}) = {len(result.kept) / result.seconds * 60:.1f} "
          "kept pairs per minute")
    for kind in synthetic.KINDS:
        of_kind = [c for c in made if c.kind == kind]
        if of_kind:
            print(f"  {kind}: {sum(1 for c in of_kind if c.status == 'kept')} of {len(of_kind)} kept")
    reasons: dict[str, int] = {}
    for c in result.rejected:
        key = c.reason.split(":")[0].split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda x: -x[1]):
        print(f"  rejected {n}: {reason}")
    for note in result.notes:
        print(f"  note: {note}")
    synthetic.bulk(ws, "accepted")
    synthetic.add_accepted(ws)
    # RAG learns nothing from pairs, so every generated pair can test it; the hand-written ones are the test side.
    generated = [p for p in corpus.qa_pairs(ws) if synthetic.is_synthetic(p)]
    written = [p for p in splits.sides(ws, splits.make_split(ws)).test if not synthetic.is_synthetic(p)]
    summary, wall, _ = timed_compare(ws, generated + written, evaluation.EvalSettings(arms=["rag"], concurrency=1))
    by = summary["by_origin"]["rag"]
    for origin in ("synthetic", "hand-written"):
        v = by[origin]
        print(f"RAG ({summary['rag']['provider']}) on {origin} test questions: F1 {v['f1']:.2f} "
              f"[{v['f1_ci_low']:.2f}, {v['f1_ci_high']:.2f}] (n = {v['f1_n']} answerable of {v['n']})")
    print(f"({wall:.0f} s for the RAG arm)")
    assert result.planned == len(made) and corpus.qa_pairs(ws)
