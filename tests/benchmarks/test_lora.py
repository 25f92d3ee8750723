"""The LoRA trainer on this machine: time per epoch on the sample's training side, and Compare on the
sample with one model in four arms: base, base + RAG (llama.cpp), LoRA, LoRA + RAG (transformers + peft).

Run: python -m pytest tests/benchmarks/test_lora.py -s
"""
import time

import pytest

from workbench import evaluation, finetune, index, providers, sample, splits, workspace

pytest.importorskip("peft", reason='the lora extra: pip install -e ".[lora]"')


@pytest.mark.local_llm
def test_lora_time_per_epoch_and_the_two_by_two_on_the_sample(tmp_path, timed_compare):
    from workbench.providers.lora_trainer import LoraSettings

    ws = workspace.open_workspace("sample", home=tmp_path, create=True)
    sample.ensure_sample(ws)
    index.build_index(ws, providers.get_embedder())
    splits.make_split(ws)
    side = splits.sides(ws, splits.saved_split(ws))
    settings = LoraSettings(epochs=3, learning_rate=5e-4)
    t0 = time.perf_counter()
    job = finetune.run_lora(ws, settings)
    train_s = time.perf_counter() - t0
    per_epoch = [m["seconds"] for m in job["metrics"]]
    print(f"\nLoRA r={settings.rank} on {len(side.train)} train pairs (dev {len(side.dev)}): {len(per_epoch)} epochs in "
          f"{train_s:.0f} s, {sum(per_epoch) / len(per_epoch):.0f} s per epoch; losses "
          + "; ".join(f"epoch {m['step']}: train {m['train_loss']:.3f}, dev {m['valid_loss']:.3f}" for m in job["metrics"]))
    questions = evaluation.default_questions(ws)
    run_settings = evaluation.EvalSettings(arms=["base", "rag", "ft", "ft_rag"], concurrency=1, ft_model=job["id"])
    summary, wall, _ = timed_compare(ws, questions, run_settings)
    print(f"{len(questions)} test questions x 4 arms in {wall:.0f} s")
    for arm in run_settings.arms:
        m = summary[arm]["metrics"]
        ci = f" [{m['f1_ci_low']:.2f}, {m['f1_ci_high']:.2f}]" if m["f1_ci_low"] is not None else ""
        print(f"  {arm:<6} F1 {m['f1']:.2f}{ci} (n={m['f1_n']}); abstains on unanswerable {m['abstention_rate']:.2f} "
              f"(n={m['abstention_rate_n']}); p50 {m['latency_ms_p50']:.0f} ms; {summary[arm]['provider']}")
    for c in summary["comparisons"]:
        print(f"  {c['a']} - {c['b']}: {c['difference']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]")
    assert job["state"] == "succeeded"
