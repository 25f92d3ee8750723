"""The local LLM on this machine: load time, time to first token, decode speed, and Compare on the sample
with SmolLM2-135M-Instruct against the extractive answerer (base and RAG arms on the test side).

Run: python -m pytest tests/benchmarks/test_local_llm.py -s
"""
import time

import pytest

from workbench import evaluation, finetune, index, providers, sample, splits, workspace
from workbench.providers import llamacpp

pytest.importorskip("xllamacpp")


def _config(tmp_path, monkeypatch, chat: str) -> None:
    path = tmp_path / f"providers-{chat}.yaml"
    path.write_text(f"chat: {{provider: {chat}}}\n")
    monkeypatch.setenv("WORKBENCH_PROVIDERS", str(path))


def test_local_llm_speed_and_compare_on_the_sample(tmp_path, monkeypatch, timed_compare):
    _config(tmp_path, monkeypatch, "llamacpp")
    chat = providers.get_chat_model()
    started = time.perf_counter()
    chat.loaded()
    load = time.perf_counter() - started
    out = chat.complete([{"role": "user", "content": "Name three colours of the rainbow."}], max_tokens=64)
    print(f"\n{chat.label}: load {load:.2f} s; time to first token {out.timings['time_to_first_token_ms']:.0f} ms "
          f"({out.prompt_tokens} prompt tokens); decode {out.timings['tokens_per_s']:.0f} tokens/s "
          f"({out.completion_tokens} tokens)")
    ws = workspace.open_workspace("sample", home=tmp_path, create=True)
    sample.ensure_sample(ws)
    index.build_index(ws, providers.get_embedder())
    splits.make_split(ws)
    finetune.run_local(ws)
    questions = evaluation.default_questions(ws)
    for name, arms in (("llamacpp", list(evaluation.ARMS)), ("extractive", ["base", "rag"])):
        _config(tmp_path, monkeypatch, name)
        settings = evaluation.EvalSettings(arms=arms, concurrency=1)
        summary, wall, ctx = timed_compare(ws, questions, settings)
        print(f"{ctx.chat.label}: {len(questions)} test questions x {len(arms)} arms in {wall:.0f} s")
        for arm in settings.arms:
            m = summary[arm]["metrics"]

            def f(key, fmt=".2f"):
                if m.get(key) is None:
                    return "n/a"
                ci = f" [{m[key + '_ci_low']:{fmt}}, {m[key + '_ci_high']:{fmt}}]" if m[key + "_ci_low"] is not None else ""
                return f"{m[key]:{fmt}}{ci} (n={m[key + '_n']})"
            print(f"  {arm:<5} F1 {f('f1')}; EM {f('exact_match')}; grounded {f('groundedness')}; abstains on "
                  f"unanswerable {f('abstention_rate')}; latency p50 {m['latency_ms_p50']:.0f} ms; "
                  f"{summary[arm]['provider']}")
            speed = summary[arm]["model_speed"]
            if speed:
                print(f"        speed on this machine: first token {speed['ttft_ms']:.0f} ms + "
                      f"{speed['ms_per_1k_prompt_tokens']:.0f} ms per 1k prompt tokens (p50 "
                      f"{speed['time_to_first_token_ms_p50']:.0f} ms at {speed['prompt_tokens_p50']:.0f} tokens), "
                      f"decode {speed['output_tokens_per_s']:.0f} tokens/s")
    assert llamacpp.BUNDLED_LABEL in chat.label
