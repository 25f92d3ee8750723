"""The LoRA trainer on the bundled SmolLM2-135M-Instruct: real transformers + peft on torch (the lora extra)."""
import json
import math

import pytest

from workbench import corpus, evaluation, finetune, providers, splits, workspace
from workbench.errors import WorkbenchError
from workbench.providers import lora_trainer

FACTS = [(f"What is the code name of release {n}?", f"Release {n} is called {name}.") for n, name in enumerate(
    ["Amber", "Birch", "Cedar", "Dune", "Ember", "Fjord", "Garnet", "Harbor", "Iris", "Juniper", "Kestrel", "Lumen",
     "Maple", "Nimbus", "Onyx", "Pine", "Quartz", "Raven", "Sable", "Tundra", "Umber", "Vale", "Willow", "Xenon",
     "Yarrow", "Zephyr", "Aspen", "Basalt", "Coral", "Delta"], 1)]
SYSTEM = "You answer questions about the product briefly and exactly."


def _examples(facts):
    return [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                          {"role": "assistant", "content": a}]} for q, a in facts]


def test_without_the_extra_it_is_listed_as_unavailable_with_the_install_command(monkeypatch):
    monkeypatch.setattr(lora_trainer, "NEEDS", ("torch", "no_such_module_for_this_test"))
    assert lora_trainer.missing() == 'no_such_module_for_this_test not installed: pip install -e ".[lora]"'
    backend = providers.REGISTRY.get("fine_tuner", "lora")
    assert backend.why_unavailable().endswith('pip install -e ".[lora]"')
    assert "lora" in {b.name for b in providers.REGISTRY.backends("fine_tuner")}


for _module in lora_trainer.NEEDS:
    pytest.importorskip(_module, reason=f"{_module} is in the lora extra: pip install -e \".[lora]\"")
try:
    lora_trainer.base_source(lora_trainer.LoraSettings())
except WorkbenchError as _exc:  # the model file is installed by the README's commands
    pytest.skip(f"bundled model not installed: {_exc}", allow_module_level=True)

QUICK = lora_trainer.LoraSettings(epochs=1, batch_size=4, learning_rate=1e-3, max_length=96)


@pytest.fixture(scope="module")
def base():
    return lora_trainer.load_base(QUICK)


def _train_loss(model, tokenizer, examples):
    batches = lora_trainer._batches([lora_trainer.encode(tokenizer, e["messages"], 96) for e in examples], 4,
                                    tokenizer.pad_token_id)
    return lora_trainer._mean_loss(model, batches)


def test_the_loss_is_on_the_reply_tokens_only(base):
    _, tokenizer = base
    ids, labels = lora_trainer.encode(tokenizer, _examples(FACTS[:1])[0]["messages"], 96)
    reply = [t for t, y in zip(ids, labels) if y != -100]
    assert len(ids) == len(labels) and 0 < len(reply) < len(ids)
    assert "Release 1 is called Amber." in tokenizer.decode(reply)
    assert "What is the code name" not in tokenizer.decode(reply)


@pytest.mark.timeout(300)
def test_answers_cut_off_by_max_length_are_refused_not_trained_on_as_nan(base, tmp_path):
    short = QUICK.model_copy(update={"max_length": 16})
    with pytest.raises(WorkbenchError, match=r"every training example's answer falls past max_length \(16 tokens\)"):
        lora_trainer.train(_examples(FACTS[:4]), [], short, tmp_path)


@pytest.mark.timeout(600)
def test_one_epoch_on_20_pairs_lowers_the_loss_and_the_adapter_reloads_and_answers(base, tmp_path):
    model, tokenizer = base
    train = _examples(FACTS[:20])
    before = _train_loss(model, tokenizer, train)
    steps = []
    result = lora_trainer.train(train, _examples(FACTS[20:24]), QUICK, tmp_path, on_step=steps.append)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5] and {s.steps for s in steps} == {5}
    assert result.epochs[0].valid_loss is not None and result.best_epoch == 1
    adapter = tmp_path / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert (adapter / "adapter_model.safetensors").is_file()                    # PEFT format
    chat = lora_trainer.LoraChat(adapter, QUICK, "lora-test")
    tuned, _, _ = chat._model()
    after = _train_loss(tuned, tokenizer, train)
    assert after < before                                                       # it learned the training pairs
    reply = chat.complete(train[0]["messages"][:2], max_tokens=16)
    assert reply.text and reply.completion_tokens > 0 and reply.prompt_tokens > 10
    assert reply.text == chat.complete(train[0]["messages"][:2], max_tokens=16).text   # greedy: deterministic


@pytest.mark.timeout(900)
def test_a_crashed_run_resumes_from_its_last_checkpoint(base, tmp_path):
    two = QUICK.model_copy(update={"epochs": 2, "patience": 5})
    train, dev = _examples(FACTS[:8]), _examples(FACTS[20:22])

    def crash_in_epoch_two(step):
        if step.epoch == 2:
            raise RuntimeError("simulated crash")
    with pytest.raises(RuntimeError, match="simulated crash"):
        lora_trainer.train(train, dev, two, tmp_path, on_step=crash_in_epoch_two)
    assert (tmp_path / "checkpoints" / "epoch-1" / "state.json").is_file()
    first = json.loads((tmp_path / "checkpoints" / "epoch-1" / "state.json").read_text())["epochs"][0]
    resumed = lora_trainer.train(train, dev, two, tmp_path)
    assert resumed.resumed_from == 1 and [e.epoch for e in resumed.epochs] == [1, 2]
    assert resumed.epochs[0].train_loss == first["train_loss"]               # epoch 1 was not trained again
    assert not math.isnan(resumed.epochs[1].valid_loss)
    again = lora_trainer.train(train, dev, two, tmp_path)                     # finished: nothing left to do
    assert again.resumed_from == 2 and len(again.epochs) == 2


@pytest.mark.local_llm
@pytest.mark.timeout(900)
def test_the_lora_job_trains_on_train_early_stops_on_dev_and_is_compared_on_test():
    ws = workspace.open_workspace("lora", create=True)
    lines = "\n".join(json.dumps({"question": q, "answer": a}) for q, a in FACTS)
    corpus.ingest(ws, [("facts.jsonl", lines.encode())], kind="qa")
    split = splits.make_split(ws, test_share=0.2, dev_share=0.15)
    side = splits.sides(ws, split)
    assert not {p.id for p in side.dev} & {p.id for p in side.test} and side.dev and side.test
    job = finetune.run_lora(ws, QUICK)
    assert job["state"] == "succeeded" and job["provider"] == "lora" and job["metrics"][0]["valid_loss"] > 0
    record = job["trained_on"]
    assert set(record["train_ids"]) == {p.id for p in side.train} and set(record["dev_ids"]) == {p.id for p in side.dev}
    model = next(m for m in finetune.trained_models(ws) if m.kind == "lora")
    assert model.offline and "LoRA" in model.label
    settings = evaluation.EvalSettings(arms=["base", "ft"], ft_model=model.id)
    run_id = evaluation.create_run(ws, side.test, settings)                  # no overlap with what it saw
    ctx = evaluation.build_arms(ws, settings)
    evaluation.run(ws, run_id, ctx)
    summary = evaluation.summarize(ws, run_id)
    assert summary["run"]["overlap"] == 0 and summary["ft"]["metrics"]["f1_n"] == len(side.test)
    assert summary["ft"]["metrics"]["cost_per_query_usd"] == 0 and summary["ft"]["unpriced"] == 0  # runs locally
    assert summary["ft"]["provider"].startswith(f"LoRA {model.id} of SmolLM2-135M-Instruct")
    assert summary["base"]["provider"].startswith("SmolLM2-135M-Instruct, local")
    assert not any("different models" in n for n in summary["run"]["notes"])   # one base model, tuned or not
