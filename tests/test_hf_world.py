"""The world made of existing checkpoints: import, streamed task vectors, real tasks, device selection."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO
from pretrained_fixture import build_expert, build_pretrained

FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    m0 = build_pretrained(root / "m0")
    return {"m0": m0, "a": build_expert(m0, root / "a", seed=1), "b": build_expert(m0, root / "b", seed=2)}


def _all_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


# --- task vectors ---------------------------------------------------------------------------------
def test_fixture_is_sharded_with_chat_template(pretrained):
    from transformers import AutoTokenizer

    assert (pretrained["m0"] / "model.safetensors.index.json").is_file()
    assert len(list(pretrained["m0"].glob("model-*.safetensors"))) > 2
    assert AutoTokenizer.from_pretrained(pretrained["m0"]).chat_template


def test_streamed_task_vector_equals_in_memory_difference(pretrained, tmp_path):
    from selfdev.io import SafetensorsFile
    from selfdev.world.taskvectors import write_task_vector

    info = write_task_vector(pretrained["m0"], pretrained["a"], tmp_path / "a.safetensors", [r"\.mlp\."])
    seed, expert = _all_weights(pretrained["m0"]), _all_weights(pretrained["a"])
    expected = {n: expert[n] - seed[n] for n in seed if ".mlp." in n}
    got = SafetensorsFile(tmp_path / "a.safetensors")
    assert sorted(got.keys()) == sorted(expected) and info["parameters"] == len(expected)
    for name, want in expected.items():
        assert torch.equal(got.get(name), want), name
    assert info["norm"] == pytest.approx(float(torch.sqrt(sum((t.double() ** 2).sum() for t in expected.values()))))
    # bf16 storage halves the file and rounds the same differences
    write_task_vector(pretrained["m0"], pretrained["a"], tmp_path / "a16.safetensors", [r"\.mlp\."], dtype="bfloat16")
    half = SafetensorsFile(tmp_path / "a16.safetensors")
    name = next(iter(expected))
    assert half.dtype(name) == "bfloat16" and torch.equal(half.get(name), expected[name].to(torch.bfloat16))


_MEMORY_CHILD = textwrap.dedent("""
    import json, sys, torch
    from pathlib import Path
    import selfdev.world.taskvectors as tv
    from safetensors.torch import load_file

    def status_mb(key):
        line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
        return int(line.split()[1]) / 1024

    root, mode = Path(sys.argv[1]), sys.argv[2]
    tv.write_task_vector(root / "warm_m0", root / "warm_x", root / "warm.safetensors", [r"\\.mlp\\."])
    open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current resident size
    start = status_mb("VmRSS")
    if mode == "stream":
        tv.write_task_vector(root / "m0", root / "x", root / "tv.safetensors", [r"\\.mlp\\."])
    else:  # what a whole-model implementation holds: both models, then the difference
        a, b = load_file(str(root / "m0" / "model.safetensors")), load_file(str(root / "x" / "model.safetensors"))
        d = {k: b[k] - a[k] for k in a}
    peak = status_mb("VmHWM")
    print(json.dumps({"increase_mb": peak - start}))
""")


def _raw_model(folder: Path, n: int, side: int, noise: float = 0.0) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    tensors = {f"model.layers.{i}.mlp.up_proj.weight": torch.randn(side, side, generator=gen) for i in range(n)}
    if noise:
        tensors = {k: v + noise for k, v in tensors.items()}
    save_file(tensors, str(folder / "model.safetensors"))


def test_streamed_task_vector_peak_memory_is_one_parameter_not_a_model(tmp_path):
    # 16 parameters of 4 MiB: M0 and the expert are 64 MiB each. Streaming holds a few parameters.
    # The warm-up model has parameters of the same size, so the allocator's first growth is not counted.
    for name, n, side in (("m0", 16, 1024), ("warm_m0", 2, 1024)):
        _raw_model(tmp_path / name, n, side)
        _raw_model(tmp_path / name.replace("m0", "x"), n, side, noise=0.5)

    def increase(mode: str) -> float:
        # A fixed mmap threshold: glibc otherwise raises it after the first large free and keeps freed
        # 4 MiB blocks in its heap, so the peak would measure the allocator's caching, not live tensors.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(tmp_path), mode], capture_output=True,
                             text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])["increase_mb"]

    streamed, whole = increase("stream"), increase("whole")
    assert streamed < 32, f"streaming the task vector grew memory by {streamed:.0f} MiB (4 MiB per parameter)"
    assert whole > 100, f"the whole-model measurement should see both models ({whole:.0f} MiB): the probe is blind"


def test_architecture_mismatch_names_the_expert_and_first_parameter(pretrained, tmp_path):
    from safetensors.torch import save_file

    from selfdev.world.taskvectors import write_task_vector

    weights = _all_weights(pretrained["m0"])
    name = sorted(n for n in weights if ".mlp." in n)[0]
    bad = tmp_path / "bad"
    bad.mkdir()
    save_file({**weights, name: torch.zeros(3, 3)}, str(bad / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"expert mathy does not match M0's architecture: parameter {name} has shape"):
        write_task_vector(pretrained["m0"], bad, tmp_path / "x.safetensors", [r"\.mlp\."], expert="mathy")
    save_file({k: v for k, v in weights.items() if k != name}, str(bad / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"parameter {name} is missing"):
        write_task_vector(pretrained["m0"], bad, tmp_path / "x.safetensors", [r"\.mlp\."], expert="mathy")
    save_file({**weights, name: weights[name].to(torch.bfloat16)}, str(bad / "model.safetensors"))
    with pytest.raises(ValueError, match=rf"parameter {name} has dtype bfloat16, M0 float32"):
        write_task_vector(pretrained["m0"], bad, tmp_path / "x.safetensors", [r"\.mlp\."], expert="mathy")
    assert not (tmp_path / "x.safetensors").exists()


# --- importing ------------------------------------------------------------------------------------
def test_import_links_same_dtype_and_converts_others(pretrained, tmp_path):
    from selfdev.world.checkpoints import Checkpoint, import_checkpoint

    log = import_checkpoint(str(pretrained["a"]), tmp_path / "linked", dtype="float32", what="world.experts.a")
    shards = sorted((tmp_path / "linked").glob("*.safetensors"))
    assert shards and all(s.is_symlink() for s in shards) and set(log["weights"].values()) == {"linked"}
    assert (tmp_path / "linked" / "tokenizer.json").is_file() and not (tmp_path / "linked" / "tokenizer.json").is_symlink()
    log16 = import_checkpoint(str(pretrained["a"]), tmp_path / "bf16", dtype="bfloat16", what="world.experts.a")
    assert all(v.startswith("converted") for v in log16["weights"].values())
    src, linked, half = Checkpoint(pretrained["a"]), Checkpoint(tmp_path / "linked"), Checkpoint(tmp_path / "bf16")
    for name in src.names:
        assert torch.equal(linked.get(name), src.get(name))
        assert half.dtype(name) == "bfloat16" and torch.equal(half.get(name), src.get(name).to(torch.bfloat16))
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")  # a loadable checkpoint


def test_import_converts_pytorch_bin_shards(pretrained, tmp_path):
    from selfdev.world.checkpoints import Checkpoint, import_checkpoint

    src = tmp_path / "bin"
    src.mkdir()
    weights = _all_weights(pretrained["m0"])
    names = sorted(weights)
    half = len(names) // 2
    shards = {"pytorch_model-00001-of-00002.bin": names[:half], "pytorch_model-00002-of-00002.bin": names[half:]}
    for fname, keys in shards.items():
        torch.save({k: weights[k] for k in keys}, src / fname)
    (src / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"weight_map": {k: f for f, keys in shards.items() for k in keys}}))
    for f in pretrained["m0"].iterdir():
        if f.suffix == ".json" and "index" not in f.name:
            (src / f.name).write_text(f.read_text())
    import_checkpoint(str(src), tmp_path / "out", dtype="float32", what="world.experts.old")
    out = Checkpoint(tmp_path / "out")
    assert out.names == names and all(torch.equal(out.get(n), weights[n]) for n in names)
    assert (tmp_path / "out" / "model-00002-of-00002.safetensors").is_file()


def test_unreachable_model_id_is_one_line_naming_it(monkeypatch, tmp_path):
    from selfdev.world.checkpoints import ModelSourceError, import_checkpoint, resolve_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelSourceError) as err:
        resolve_source("no-such-org/no-such-model", "world.experts.abel")
    msg = str(err.value)
    assert "\n" not in msg and "world.experts.abel" in msg and "'no-such-org/no-such-model'" in msg
    assert "hub" in msg and "local checkpoint folder" in msg
    with pytest.raises(ModelSourceError, match="world.seed_model: model './missing' is not a local folder"):
        import_checkpoint("./missing", tmp_path / "out", dtype="float32", what="world.seed_model")
    assert not (tmp_path / "out").exists()


# --- real tasks -----------------------------------------------------------------------------------
def test_gsm8k_split_dev_from_train_shots_disjoint_test_from_test():
    from selfdev.scoring.tasks import task_split

    src = str(FIXTURES / "gsm8k")
    kw = dict(seed=0, dev_size=6, test_size=None, num_shots=5)
    dev, shots, test = (task_split("gsm8k", src, s, **kw) for s in ("dev", "shots", "test"))
    assert len(dev) == 6 and len(shots) == 5 and len(test) == 12
    assert not {r["question"] for r in dev} & {r["question"] for r in shots}
    train_q = {json.loads(l)["question"] for l in (FIXTURES / "gsm8k" / "train.jsonl").read_text().splitlines()}
    assert {r["question"] for r in dev + shots} <= train_q
    assert task_split("gsm8k", src, "dev", **kw) == dev  # fixed by the seed
    assert task_split("gsm8k", src, "dev", **{**kw, "seed": 1}) != dev
    assert len(task_split("gsm8k", src, "test", **{**kw, "test_size": 5})) == 5


def test_five_shot_prompt_reaches_the_model(pretrained, tmp_path):
    """The shots split's 5 examples are in the token ids the model is given for every dev question,
    as chat turns of the model's own template."""
    from selfdev.io import write_jsonl
    from selfdev.lm import GenerationSpec
    from selfdev.scoring.merge import MergeScorer
    from selfdev.scoring.prompts import load_template
    from selfdev.scoring.tasks import task_split
    from selfdev.world.taskvectors import write_task_vector

    tpl = load_template(REPO / "config" / "prompts" / "gsm8k_5shot.yaml")
    kw = dict(seed=0, dev_size=3, test_size=None, num_shots=tpl.num_shots)
    dev = task_split("gsm8k", str(FIXTURES / "gsm8k"), "dev", **kw)
    shots = task_split("gsm8k", str(FIXTURES / "gsm8k"), "shots", **kw)
    write_task_vector(pretrained["m0"], pretrained["a"], tmp_path / "a.safetensors", [r"\.mlp\."])
    scorer = MergeScorer(pretrained["m0"], [tmp_path / "a.safetensors"], dev, tpl, GenerationSpec(4, 8), None,
                         shots=shots, task="gsm8k")
    seen = []
    generate = scorer.model.generate

    def spy(**kwargs):
        seen.extend(scorer.tokenizer.batch_decode(kwargs["input_ids"], skip_special_tokens=False))
        return generate(**kwargs)

    scorer.model.generate = spy
    result = scorer.evaluate()
    assert result.n == 3 and len(seen) == 3
    for row in dev:
        prompt = next(p for p in seen if row["question"] in p)
        assert all(s["question"] in prompt and s["answer"].split("####")[-1].strip() in prompt for s in shots)
        assert prompt.count("<|im_start|>user") == 6 and prompt.count("<|im_start|>assistant") == 6
        assert prompt.rstrip("<|endoftext|>").endswith("<|im_start|>assistant\n")


def test_math_rows_and_math_verify_checking(tmp_path):
    from selfdev.scoring.tasks import get_task, last_boxed, load_task_rows, math_correct

    rows = load_task_rows("math", str(FIXTURES / "math"), "test")
    assert len(rows) == 4 and rows[1]["skill"] == "Algebra"
    task = get_task("math")
    assert [task.gold(r["answer"]) for r in rows] == ["2", "2\\sqrt{2}", "\\frac{1}{2}", "7"]
    assert last_boxed("so \\boxed{\\frac{a}{b}} and \\boxed{x^{2}}") == "x^{2}"
    # equivalent forms are right, other values wrong: a string match would get these wrong
    assert math_correct("The sum is $\\boxed{0.5}$.", "\\frac{1}{2}")
    assert math_correct("We get $\\boxed{\\sqrt{8}}$", "2\\sqrt{2}")
    assert math_correct("so x = \\boxed{7}", "7")
    assert not math_correct("so x = \\boxed{8}", "7")
    assert not math_correct("I do not know", "7")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test.jsonl").write_text(json.dumps({"problem": "p", "level": "1"}) + "\n")
    with pytest.raises(ValueError, match=r"bad/test.jsonl: row 0 lacks the string field 'solution'"):
        load_task_rows("math", str(bad), "test")
    (bad / "test.jsonl").write_text(json.dumps({"problem": "p", "solution": "no box"}) + "\n")
    with pytest.raises(ValueError, match=r"bad/test.jsonl: row 0: MATH solution has no \\boxed"):
        load_task_rows("math", str(bad), "test")
    (bad / "train.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"bad/train.jsonl: row 0 lacks the string field 'answer'"):
        load_task_rows("gsm8k", str(bad), "train")


def test_unreachable_dataset_is_one_line(monkeypatch, tmp_path):
    from selfdev.scoring.tasks import load_task_rows

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError) as err:
        load_task_rows("gsm8k", "", "test")
    assert "'openai/gsm8k'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="eval.source: folder not found: ./nowhere"):
        load_task_rows("math", "./nowhere", "test")


# --- device ---------------------------------------------------------------------------------------
def test_device_selection(monkeypatch):
    from selfdev.device import resolve_device, trainer_flags

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="device: 'cuda' was requested but torch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device: expected one of"):
        resolve_device("tpu")
    assert trainer_flags("cuda") == {"use_cpu": False, "bf16": True}
    assert trainer_flags("cpu") == {"use_cpu": True, "bf16": False}


def test_dpo_and_warmup_take_the_device_from_the_config(monkeypatch, tiny_factory, tmp_path):
    """What TRL is told for a CUDA run (bf16, not use_cpu) and for a CPU run: captured at its config."""
    import trl

    from selfdev.loop.finetune import DpoSpec, LoraSpec, WarmupSpec, train_dpo, warmup_sft

    seen = []

    class Stop(Exception):
        pass

    def capture(**kwargs):
        seen.append({k: kwargs[k] for k in ("use_cpu", "bf16")})
        raise Stop

    monkeypatch.setattr(trl, "DPOConfig", capture)
    monkeypatch.setattr(trl, "SFTConfig", capture)
    pair = [{"prompt": "p", "chosen": " a", "rejected": " b"}]
    dpo = DpoSpec(1e-3, 0.1, 1, 1, 64, 0, LoraSpec(2, 4))
    for device in ("cuda", "cpu"):
        with pytest.raises(Stop):
            train_dpo(tiny_factory, pair, dpo, tmp_path / "d", device=device)
        with pytest.raises(Stop):
            warmup_sft(tiny_factory, "p", ["    return t[0]"], WarmupSpec(1, 1e-3, 1, 0, LoraSpec(2, 4), "full"),
                       tmp_path / "w", device=device)
    assert seen == [{"use_cpu": False, "bf16": True}] * 2 + [{"use_cpu": True, "bf16": False}] * 2


def test_merge_is_written_into_the_model_parameter_by_parameter_and_restored(pretrained, tmp_path):
    """Inside `merged_program` the model is M0 + the program's merge (checked against the in-memory
    sum); nothing is collected on the side; afterwards every parameter is M0's again, bit for bit."""
    from conftest import sandbox
    from selfdev.algorithms import reference_paths
    from selfdev.lm import GenerationSpec
    from selfdev.scoring.merge import MergeScorer
    from selfdev.scoring.prompts import load_template

    tvs = []
    for e in ("a", "b"):
        from selfdev.world.taskvectors import write_task_vector

        write_task_vector(pretrained["m0"], pretrained[e], tmp_path / f"{e}.safetensors", [r"\.mlp\."])
        tvs.append(tmp_path / f"{e}.safetensors")
    rows = [{"question": "1+1?", "answer": "#### 2"}]
    scorer = MergeScorer(pretrained["m0"], tvs, rows, load_template(REPO / "config" / "prompts" / "toy.yaml"),
                         GenerationSpec(2, 1), sandbox("merge", wall_s=20, memory_mb=1024))
    m0, a, b = (_all_weights(pretrained[k]) for k in ("m0", "a", "b"))
    before = {n: p.detach().clone() for n, p in scorer.model.named_parameters()}
    code = reference_paths()["mean"].read_text()
    calls = []
    apply = scorer._apply
    scorer._apply = lambda name, delta: (calls.append(name), apply(name, delta))
    with scorer.merged_program(code) as outcome:
        assert outcome.ok and outcome.merged == {}
        params = dict(scorer.model.named_parameters())
        for name in scorer.tvs.names:
            expected = m0[name] + ((a[name] - m0[name]) + (b[name] - m0[name])) / 2
            assert torch.allclose(params[name], expected, atol=1e-6), name
        assert scorer.evaluate().n == 1
    assert calls == scorer.tvs.names  # one parameter at a time, in order
    for name, p in scorer.model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_programs_see_float32_when_task_vectors_are_stored_in_bf16(pretrained, tmp_path):
    """`merge.dtype: bfloat16` halves the files, but a program gets float32 tensors, as in the probe
    (torch.quantile, for one, has no bf16 kernel)."""
    from conftest import sandbox
    from selfdev.world.taskvectors import TaskVectorSet, merge_in_sandbox, write_task_vector

    for e in ("a", "b"):
        write_task_vector(pretrained["m0"], pretrained[e], tmp_path / f"{e}.safetensors", [r"\.mlp\."],
                          dtype="bfloat16")
    tvs = TaskVectorSet([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    assert all(t.dtype == torch.float32 for t in tvs.get(tvs.names[0]))
    code = ("import torch\ndef merge(tvs):\n    s = torch.stack(tvs)\n"
            "    return s.mean(dim=0) * (s.abs() > torch.quantile(s.abs().flatten()[:1000], 0.5)).float().mean(dim=0)\n")
    out = merge_in_sandbox(code, tvs, sandbox("merge", wall_s=20, memory_mb=1024))
    assert out.ok, out.reason
    assert all(v.dtype == torch.float32 for v in out.merged.values())
