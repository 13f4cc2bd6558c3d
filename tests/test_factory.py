import json

import pytest

from factory_fixture import MICRO_PROMPT
from selfdev.loop import tables as loop
from selfdev.loop.factory import SamplingSpec, extract_body, load_factory, program_from, sample_completions
from selfdev.loop.finetune import (DpoSpec, LoraSpec, WarmupSpec, pair_tokens, train_dpo, warmup_prompt,
                                   warmup_sft)
from selfdev.loop.library import EXAMPLE_BODIES
from selfdev.sandbox.probe import check_program
from conftest import defaults, sandbox

LIMITS = sandbox(wall_s=5, cpu_s=5, memory_mb=1024)


def test_sampling_is_seeded_and_yields_valid_programs(tiny_factory):
    model, tok = load_factory(tiny_factory)
    spec = SamplingSpec(n=8, temperature=0.5, top_p=0.95, max_new_tokens=120, batch_size=4, seed=3)
    first = sample_completions(model, tok, MICRO_PROMPT, spec)
    assert [c for c, _ in first] == [c for c, _ in sample_completions(model, tok, MICRO_PROMPT, spec)]
    bodies = [extract_body(c) for c, _ in first]
    valid = [b for b in bodies if check_program(program_from(MICRO_PROMPT, b), LIMITS).executable]
    assert len(valid) >= 4, bodies


def test_shared_prompt_prefill_keeps_the_samples(tiny_factory, monkeypatch):
    """Prefilling a batch's shared prompt once (the default) samples exactly what prefilling every row
    does, for the same seed: a speed-up that does not alter candidates."""
    import selfdev.loop.factory as factory

    model, tok = load_factory(tiny_factory)
    spec = SamplingSpec(n=8, temperature=0.9, top_p=0.95, max_new_tokens=60, batch_size=4, seed=11)
    calls = []
    real = factory._shared_prefix
    monkeypatch.setattr(factory, "_shared_prefix", lambda *a: calls.append(a[2]) or real(*a))
    shared = [c for c, _ in sample_completions(model, tok, MICRO_PROMPT, spec)]
    assert calls == [4, 4]  # one prefill per batch
    plain = [c for c, _ in sample_completions(model, tok, MICRO_PROMPT, spec, share_prefix=False)]
    assert shared == plain and len(set(shared)) > 1


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _completion_logp(model_dir, prompt: str, completions) -> list[float]:
    """Summed log-probability of each completion after `prompt` under the checkpoint in `model_dir`."""
    import torch

    model, tok = load_factory(model_dir)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    out = []
    with torch.no_grad():
        for completion in completions:
            ids = torch.tensor([tok(prompt + completion, add_special_tokens=False)["input_ids"]])
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            targets = ids[0, 1:]
            out.append(float(logp[torch.arange(len(targets)), targets][n_prompt - 1:].sum()))
    return out


def test_warmup_prompt_keeps_the_file_or_its_last_merge_signature():
    prompt = 'import torch\n\n\ndef merge_a(t):\n    return t[0]\n\n\ndef merge(task_vectors):\n    """Doc."""'
    assert warmup_prompt(prompt, "full") == prompt
    assert warmup_prompt(prompt, "signature") == 'def merge(task_vectors):\n    """Doc."""'
    with pytest.raises(ValueError, match="factory.warmup.prompt signature.*def merge"):
        warmup_prompt("import torch\n\n# no function here", "signature")
    with pytest.raises(ValueError, match="factory.warmup.prompt signature"):
        warmup_prompt("x = 1; def merge(t): pass", "signature")  # not at a line start
    with pytest.raises(ValueError, match="unknown value 'tail'"):
        warmup_prompt(prompt, "tail")


@pytest.mark.parametrize("scope", ["full", "signature"])
def test_warmup_trains_a_lora_and_saves_merged_fp32(tiny_factory, tmp_path, scope):
    # Bodies the tiny factory never saw (it was trained on the library), so there is something to learn.
    bodies = ["    return task_vectors[-1] * 0.75", "    return sum(task_vectors) * 0.125",
              "    return torch.stack(task_vectors).amax(0)", "    return task_vectors[0] - task_vectors[-1]"]
    log = warmup_sft(tiny_factory, MICRO_PROMPT, bodies, WarmupSpec(epochs=2, lr=1e-2, batch_size=2,
                     seed=0, lora=LoraSpec(r=4, alpha=8), prompt=scope), tmp_path / "warm")
    assert log["steps"] == 4 and len(log["losses"]) == 4 and log["prompt"] == scope
    # The warm-up makes its examples more likely after the whole prompt, the text sampling shows (summed
    # log-probability of the bodies), also when it trained after the signature alone.
    targets = ["\n" + b + "\n" for b in bodies]
    before = _completion_logp(tiny_factory, MICRO_PROMPT, targets)
    after = _completion_logp(tmp_path / "warm", MICRO_PROMPT, targets)
    assert sum(after) > sum(before) + 5.0, (before, after)
    assert (tmp_path / "warm" / "adapter" / "adapter_model.safetensors").is_file()
    w_before, w_after = _weights(tiny_factory), _weights(tmp_path / "warm")
    assert all(t.dtype.is_floating_point and str(t.dtype) == "torch.float32" for t in w_after.values())
    assert any((w_before[k] - w_after[k]).abs().max() > 0 for k in w_before if "mlp" in k or "proj" in k)
    assert json.loads((tmp_path / "warm" / "train_log.json").read_text())["kind"] == "warmup_sft"


def _library_pairs() -> list[dict]:
    rows = [{"candidate_id": f"it1-{i:05d}", "code_hash": f"h{i}", "executable": True, "dev_accuracy": acc,
             "body": b} for i, (acc, b) in enumerate(zip([0.9, 0.1, 0.5, 0.2], EXAMPLE_BODIES))]
    spec = loop.PairSpec.from_config({**defaults("loop"), "min_chosen": 2, "min_rejected": 2}, 0)
    return loop.select_pairs(rows, [], spec, 1, MICRO_PROMPT)


def test_dpo_moves_the_factory_and_records_lineage(tiny_factory, tmp_path):
    pairs = _library_pairs()
    assert len(pairs) == 4
    log = train_dpo(tiny_factory, pairs, DpoSpec(lr=5e-3, beta=0.1, epochs=1, batch_size=2, max_length=512,
                                                   seed=0, lora=LoraSpec(r=4, alpha=8)), tmp_path / "dpo",
                    pairs_path="pairs.jsonl")
    assert log["pairs"] == 4 and len(log["losses"]) == 2 and log["parent"] == str(tiny_factory)
    # DPO widens the margin of chosen over rejected (what it optimises), measured on the saved checkpoint.
    def margin(model_dir):
        chosen = _completion_logp(model_dir, MICRO_PROMPT, [p["chosen"] for p in pairs])
        rejected = _completion_logp(model_dir, MICRO_PROMPT, [p["rejected"] for p in pairs])
        return sum(c - r for c, r in zip(chosen, rejected)) / len(pairs)

    assert margin(tmp_path / "dpo") > margin(tiny_factory) + 0.1


def test_dpo_refuses_a_pair_that_max_length_would_cut(tiny_factory, tmp_path):
    """TRL cuts a pair longer than max_length from the end, i.e. the completion: a 509-token chat prompt under
    max_length 512 once left DPO 3 tokens of each program. The check counts tokens as TRL does."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from selfdev.device import trainer_flags

    pairs = _library_pairs()
    model, tok = load_factory(tiny_factory)
    sides = ("chosen", "rejected")
    ours = [pair_tokens(tok, p["prompt"], p[side]) for p in pairs for side in sides]
    trl = DPOTrainer(model=model, args=DPOConfig(output_dir=str(tmp_path / "trl"), max_length=None, report_to=[],
                                                 **trainer_flags("cpu")),
                     train_dataset=Dataset.from_list([{k: p[k] for k in ("prompt", *sides)} for p in pairs]),
                     processing_class=tok).train_dataset
    assert ours == [len(r["prompt_ids"]) + len(r[f"{side}_ids"]) for r in trl for side in sides]
    longest = max(ours)
    with pytest.raises(ValueError, match=rf"dpo\.max_length is {longest - 1} tokens.* take {longest}"):
        train_dpo(tiny_factory, pairs, DpoSpec(lr=5e-3, beta=0.1, epochs=1, batch_size=2, max_length=longest - 1,
                                               seed=0, lora=LoraSpec(r=4, alpha=8)), tmp_path / "cut")
    assert not (tmp_path / "cut").exists()
    # A factory folder that is not there is named as such (the length check reads its tokenizer first).
    with pytest.raises(FileNotFoundError, match="model checkpoint folder not found: .*no_factory"):
        train_dpo(tmp_path / "no_factory", pairs, DpoSpec(lr=5e-3, beta=0.1, epochs=1, batch_size=2, max_length=1024,
                                                          seed=0, lora=LoraSpec(r=4, alpha=8)), tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_dpo_without_pairs_copies_the_parent(tiny_factory, tmp_path):
    log = train_dpo(tiny_factory, [], DpoSpec.from_config(defaults("dpo"), 0), tmp_path / "same")
    assert log["skipped"] and log["parent"] == str(tiny_factory)
    before, after = _weights(tiny_factory), _weights(tmp_path / "same")
    assert all((before[k] == after[k]).all() for k in before)


def test_default_factory_converts_from_gguf(tmp_path):
    pytest.importorskip("gguf", reason="GGUF conversion needs the gguf package")
    from selfdev.loop.factory import convert_initial_factory, gguf_location

    try:
        gguf_location()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    log = convert_initial_factory("smollm2-gguf", tmp_path / "f0")
    assert 130e6 < log["parameters"] < 140e6
    model, tok = load_factory(tmp_path / "f0")
    out = sample_completions(model, tok, MICRO_PROMPT, SamplingSpec(n=2, temperature=0.7, top_p=0.95,
                                                                     max_new_tokens=8, batch_size=2, seed=0))
    assert len(out) == 2 and all(isinstance(c, str) for c, _ in out)


def test_missing_factory_folder_is_a_clear_error(tmp_path):
    from selfdev.loop.factory import convert_initial_factory

    with pytest.raises(FileNotFoundError, match="factory.model"):
        convert_initial_factory(str(tmp_path / "nope"), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_factory(tmp_path / "nope")


def test_chat_prompt_format_prefills_the_file_in_the_chat_template(tiny_factory):
    from selfdev.loop.factory import model_prompt

    model, tok = load_factory(tiny_factory)
    assert model_prompt(tok, MICRO_PROMPT, "completion") == MICRO_PROMPT
    with pytest.raises(ValueError, match="no chat template"):
        model_prompt(tok, MICRO_PROMPT, "chat")
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    text = model_prompt(tok, MICRO_PROMPT, "chat")
    assert text.startswith("<system>") and f"```python\n{MICRO_PROMPT}\n```</user>" in text
    assert text.endswith("<assistant>```python\n" + MICRO_PROMPT + "\n")  # the answer continues the body
    with pytest.raises(ValueError, match="unknown format"):
        model_prompt(tok, MICRO_PROMPT, "json")


def test_a_vllm_sample_job_binds_its_worker_to_the_cores_it_was_given():
    """vLLM on a CPU binds its worker to one core and keeps one for its scheduler unless told: a sample
    job given 2 threads must bind the worker to both (4.3 s per program instead of 7.3 for the 1.5B
    factory here), leave the choice to vLLM at 1 thread, and never override a binding the user set;
    `factory.vllm.kv_cache_gb` becomes vLLM's KV cache size unless the environment sets one."""
    from selfdev.loop.factory import vllm_cpu_env

    assert vllm_cpu_env(2, [3, 1, 2], {}) == {"VLLM_CPU_OMP_THREADS_BIND": "1,2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert vllm_cpu_env(1, [0, 1], {}) == {}
    assert vllm_cpu_env(2, [0, 1], {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}) == {}
    assert vllm_cpu_env(1, [0, 1], {}, kv_cache_gb=2) == {"VLLM_CPU_KVCACHE_SPACE": "2"}
    assert vllm_cpu_env(1, [0, 1], {"VLLM_CPU_KVCACHE_SPACE": "4"}, kv_cache_gb=2) == {}


def test_training_steps_use_the_jobs_threads(monkeypatch, tmp_path):
    """The DPO and warm-up jobs train on the threads their rule was given (`resources.rules.dpo.threads`
    raises them for a large factory), not on loop.threads: a 1.5B DPO round reserved 2 cores and trained
    on 1 (139 s per pair instead of 84) before this was passed on."""
    from selfdev.config import validate_config
    from selfdev.loop import finetune, steps

    seen = {}
    monkeypatch.setattr(finetune, "train_dpo", lambda *a, **k: seen.setdefault("dpo", a[4]))
    monkeypatch.setattr(finetune, "warmup_sft", lambda *a, **k: seen.setdefault("warmup", a[5]))
    monkeypatch.setattr(steps.loop, "read_pairs", lambda path: [])
    cfg = validate_config({})
    steps.dpo_step(config=cfg, rep=0, iteration=1, factory_dir="f", pairs="p", out_dir="o", threads=2)
    steps.factory_warmup(config=cfg, in_dir="f", out_dir="o", threads=2)
    assert seen == {"dpo": 2, "warmup": 2}
    seen.clear()
    steps.dpo_step(config=cfg, rep=0, iteration=1, factory_dir="f", pairs="p", out_dir="o")
    steps.factory_warmup(config=cfg, in_dir="f", out_dir="o")
    assert seen == {"dpo": cfg["loop"]["threads"], "warmup": cfg["loop"]["threads"]}


def test_a_vllm_batch_is_sized_by_its_longest_run_of_prompts():
    """vLLM on a CPU must prefill a sampling batch in one scheduler step (a split seeded prefill fails the
    job there), so the step's token budget is the largest batch's prompt tokens."""
    from selfdev.loop.factory import max_batch_prompt_tokens

    assert max_batch_prompt_tokens([300] * 32, 32) == 9600
    assert max_batch_prompt_tokens([10, 20, 30, 40, 50], 2) == 70
    assert max_batch_prompt_tokens([], 4) == 0
