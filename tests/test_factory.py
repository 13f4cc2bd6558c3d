import json

import pytest

from factory_fixture import MICRO_PROMPT
from selfdev import loop
from selfdev.factory import SamplingSpec, extract_body, load_factory, program_from, sample_completions
from selfdev.finetune import DpoSpec, LoraSpec, WarmupSpec, train_dpo, warmup_sft
from selfdev.library import EXAMPLE_BODIES
from selfdev.probe import check_program
from selfdev.sandbox import SandboxLimits

LIMITS = SandboxLimits(wall_s=5, cpu_s=5, memory_mb=1024)


def test_sampling_is_seeded_and_yields_valid_programs(tiny_factory):
    model, tok = load_factory(tiny_factory)
    spec = SamplingSpec(n=8, temperature=0.5, top_p=0.95, max_new_tokens=120, batch_size=4, seed=3)
    first = sample_completions(model, tok, MICRO_PROMPT, spec)
    assert [c for c, _ in first] == [c for c, _ in sample_completions(model, tok, MICRO_PROMPT, spec)]
    bodies = [extract_body(c) for c, _ in first]
    valid = [b for b in bodies if check_program(program_from(MICRO_PROMPT, b), LIMITS).executable]
    assert len(valid) >= 4, bodies


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_warmup_trains_a_lora_and_saves_merged_fp32(tiny_factory, tmp_path):
    log = warmup_sft(tiny_factory, MICRO_PROMPT, EXAMPLE_BODIES[:4], WarmupSpec(epochs=2, lr=1e-2, batch_size=2,
                     lora=LoraSpec(r=4, alpha=8)), tmp_path / "warm")
    assert log["steps"] == 4 and log["loss_last"] < log["loss_first"] * 1.5
    assert (tmp_path / "warm" / "adapter" / "adapter_model.safetensors").is_file()
    before, after = _weights(tiny_factory), _weights(tmp_path / "warm")
    assert all(t.dtype.is_floating_point and str(t.dtype) == "torch.float32" for t in after.values())
    assert any((before[k] - after[k]).abs().max() > 0 for k in before if "mlp" in k or "proj" in k)
    assert json.loads((tmp_path / "warm" / "train_log.json").read_text())["kind"] == "warmup_sft"


def test_dpo_moves_the_factory_and_records_lineage(tiny_factory, tmp_path):
    rows = [{"candidate_id": f"it1-{i:05d}", "code_hash": f"h{i}", "executable": True, "dev_accuracy": acc,
             "body": b} for i, (acc, b) in enumerate(zip([0.9, 0.1, 0.5, 0.2], EXAMPLE_BODIES))]
    pairs = loop.select_pairs(rows, [], loop.PairSpec(min_chosen=2, min_rejected=2), 1, MICRO_PROMPT)
    assert len(pairs) == 4
    log = train_dpo(tiny_factory, pairs, DpoSpec(lr=1e-3, beta=0.1, epochs=1, batch_size=2, max_length=512,
                                                   lora=LoraSpec(r=4, alpha=8)), tmp_path / "dpo",
                    pairs_path="pairs.jsonl")
    assert log["pairs"] == 4 and log["loss_first"] is not None and log["parent"] == str(tiny_factory)
    before, after = _weights(tiny_factory), _weights(tmp_path / "dpo")
    assert any((before[k] - after[k]).abs().max() > 0 for k in before)
    model, _ = load_factory(tmp_path / "dpo")  # loads as a plain checkpoint
    assert model is not None


def test_dpo_without_pairs_copies_the_parent(tiny_factory, tmp_path):
    log = train_dpo(tiny_factory, [], DpoSpec(), tmp_path / "same")
    assert log["skipped"] and log["parent"] == str(tiny_factory)
    before, after = _weights(tiny_factory), _weights(tmp_path / "same")
    assert all((before[k] == after[k]).all() for k in before)


def test_default_factory_converts_from_gguf(tmp_path):
    pytest.importorskip("gguf", reason="GGUF conversion needs the gguf package")
    from selfdev.factory import convert_initial_factory, gguf_location

    try:
        gguf_location()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    log = convert_initial_factory("smollm2-gguf", tmp_path / "f0")
    assert 130e6 < log["parameters"] < 140e6
    model, tok = load_factory(tmp_path / "f0")
    out = sample_completions(model, tok, MICRO_PROMPT, SamplingSpec(n=2, temperature=0.7, max_new_tokens=8,
                                                                     batch_size=2))
    assert len(out) == 2 and all(isinstance(c, str) for c, _ in out)


def test_missing_factory_folder_is_a_clear_error(tmp_path):
    from selfdev.factory import convert_initial_factory

    with pytest.raises(FileNotFoundError, match="factory.model"):
        convert_initial_factory(str(tmp_path / "nope"), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_factory(tmp_path / "nope")
