"""A full offline evaluation of the sample workspace, every arm: wall time and per-question latency, with
the extractive answerer as chat (tests/conftest.py; the local LLM's run is test_local_llm.py).

Run: python -m pytest tests/benchmarks/test_eval_speed.py -s
"""
import time

from workbench import evaluation, finetune, index, sample, splits, workspace
from workbench.providers.local_embedder import LocalEmbedder


def test_full_offline_evaluation_of_the_sample(tmp_path):
    ws = workspace.open_workspace("sample", home=tmp_path, create=True)
    t0 = time.perf_counter()
    sample.ensure_sample(ws)
    index.build_index(ws, LocalEmbedder())
    splits.make_split(ws)
    job = finetune.run_local(ws)
    t1 = time.perf_counter()
    settings = evaluation.EvalSettings()
    ctx = evaluation.build_arms(ws, settings)
    questions = evaluation.default_questions(ws)
    run_id = evaluation.create_run(ws, questions, settings)
    t2 = time.perf_counter()
    evaluation.run(ws, run_id, ctx)
    t3 = time.perf_counter()
    summary = evaluation.summarize(ws, run_id, ctx.embedder)
    t4 = time.perf_counter()
    print(f"\nset-up (ingest, index, split, local training: {job['events'][-1]['message']}): {t1 - t0:.1f} s")
    split = splits.saved_split(ws)
    print(f"split: {len(split.train)} train, {len(split.dev)} dev (early stopping), {len(split.test)} test; "
          f"overlap of the test side with the trained model: {summary['run']['overlap']}")
    print(f"evaluation of {len(questions)} test questions x {len(settings.arms)} arms: {t3 - t2:.1f} s wall, "
          f"{(t3 - t2) / len(questions) * 1000:.0f} ms per question for all arms; summary {t4 - t3:.1f} s")

    def ci(m, key, fmt=".3f"):
        if m[key] is None:
            return "n/a"
        interval = f" [{m[key + '_ci_low']:{fmt}}, {m[key + '_ci_high']:{fmt}}]" if m[key + "_ci_low"] is not None else ""
        return f"{m[key]:{fmt}}{interval} (n={m[key + '_n']})"

    for arm in settings.arms:
        m = summary[arm]["metrics"]
        print(f"  {arm:<7} latency p50 {m['latency_ms_p50']:.0f} ms, p95 {m['latency_ms_p95']:.0f} ms; F1 {ci(m, 'f1')}; "
              f"abstains on unanswerable {ci(m, 'abstention_rate', '.2f')}")
        if "ndcg_at_10" in m:
            print(f"          documents: hit@5 {ci(m, 'hit_at_5')}, recall@5 {ci(m, 'recall_at_5')}, "
                  f"MRR {ci(m, 'mrr')}, nDCG@10 {ci(m, 'ndcg_at_10')}")
    if "router" in summary:
        r = summary["router"]
        accuracy = "n/a" if r["routing_accuracy"] is None else f"{r['routing_accuracy']:.2f}"
        print(f"  router: {r['routed_share_rag']:.0%} to RAG; arms disagree on {r['arms_disagree_share']:.0%} of "
              f"questions; routing accuracy on those {accuracy} (n={r['routing_accuracy_n']})")
    for note in summary["run"]["notes"]:
        print(f"  note: {note}")
