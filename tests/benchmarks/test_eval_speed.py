"""A full offline evaluation of the sample workspace, every arm: wall time and per-question latency.

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
    print(f"evaluation of {len(questions)} held-out questions x {len(settings.arms)} arms: {t3 - t2:.1f} s wall, "
          f"{(t3 - t2) / len(questions) * 1000:.0f} ms per question for all arms; summary {t4 - t3:.1f} s")
    for arm in settings.arms:
        m = summary[arm]["metrics"]
        f1 = "n/a" if m["f1"] is None else f"{m['f1']:.3f} [{m['f1_ci_low']:.3f}, {m['f1_ci_high']:.3f}]"
        abstain = "n/a" if m["abstention_rate"] is None else f"{m['abstention_rate']:.2f}"
        print(f"  {arm:<7} latency p50 {m['latency_ms_p50']:.0f} ms, p95 {m['latency_ms_p95']:.0f} ms; F1 {f1}; "
              f"abstains on unanswerable {abstain}")
    if "router" in summary:
        print(f"  router: {summary['router']['routed_share_rag']:.0%} to RAG, routing accuracy "
              f"{summary['router']['routing_accuracy']:.2f}")
