"""The real Snakefile on a world of existing (tiny, pretrained-format) checkpoints and real GSM8K rows:
the code path of config/paper.yaml and config/smollm.yaml at micro scale."""

import json
import os
import subprocess

import yaml

from selfdev.algorithms import reference_paths

from conftest import REPO, snakemake_cmd
from pretrained_fixture import build_expert, build_pretrained

FIXTURES = REPO / "tests" / "fixtures"


def _config(tmp_path, tiny_factory):
    m0 = build_pretrained(tmp_path / "models" / "m0")
    return {
        "world": {
            "seed_model": str(m0),
            "experts": [{"name": "a", "model": str(build_expert(m0, tmp_path / "models" / "a", seed=1))},
                        {"name": "b", "model": str(build_expert(m0, tmp_path / "models" / "b", seed=2))},
                        # fine-tuned here from the imported M0, through its chat template
                        {"name": "price", "skills": ["price"]}],
            "transfer_experts": [],
            "data": {"expert_train_per_skill": 16, "replay_fraction": 0.0},
            "expert_training": {"steps": 2, "batch_size": 4, "lr": 0.001},
        },
        "eval": {"task": "gsm8k", "source": str(FIXTURES / "gsm8k"), "prompt": str(REPO / "config" / "prompts" / "gsm8k_5shot.yaml"),
                 "dev_size": 6, "test_size": 6, "max_new_tokens": 6, "batch_size": 8},
        "factory": {"model": str(tiny_factory), "prompt": str(tiny_factory / "prompt.txt"), "warmup": {"enabled": False}},
        # final_dpo: the one iteration's DPO round runs (the default skips the last), so DPO is tested here.
        "loop": {"iterations": 1, "n_samples": 8, "t1": 0.6, "max_new_tokens": 120, "batch_size": 8, "final_dpo": True},
        "study": {"arms": ["dpo"], "top_k": 2, "bootstrap": 100},
        "baselines": {"methods": ["task_arithmetic"], "grid_size": 2, "budget_matched": False},
        "algorithms": [str(reference_paths()["mean"])],  # one file: every reference program costs two jobs
        "sandbox": {"probe_wall_s": 3, "merge_wall_s": 10, "cpu_s": 10, "memory_mb": 1024},
    }


def test_hf_world_micro_run(tmp_path, tiny_factory):
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(_config(tmp_path, tiny_factory)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run(snakemake_cmd(tmp_path, "--cores", "2"), capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    res = tmp_path / "results"
    # imported checkpoints: weights linked, not copied; the fine-tuned expert is a real checkpoint
    seed_shards = sorted((res / "world" / "seed").glob("model-*.safetensors"))
    assert len(seed_shards) > 2 and all(s.is_symlink() for s in seed_shards)
    assert json.loads((res / "world" / "seed" / "import.json").read_text())["kind"] == "import"
    assert (res / "world" / "experts" / "price" / "train_log.json").is_file()
    # real GSM8K rows: dev and the 5 shots from train, test from test
    shots = [json.loads(l) for l in (res / "world" / "data" / "shots.jsonl").read_text().splitlines()]
    dev = [json.loads(l) for l in (res / "world" / "data" / "dev.jsonl").read_text().splitlines()]
    assert len(shots) == 5 and len(dev) == 6 and not {r["question"] for r in shots} & {r["question"] for r in dev}
    report = json.loads((res / "world" / "report.json").read_text())
    assert {r["method"] for r in report["rows"]} >= {"seed", "expert", "task_arithmetic", "ties"}
    assert (res / "summary.md").is_file() and (res / "final" / "leaderboard.parquet").is_file()
    assert (res / "loop" / "dpo" / "seed0" / "iter1" / "factory" / "config.json").is_file()
    # finished: nothing left to do, offline
    again = subprocess.run(snakemake_cmd(tmp_path, "-n", "--cores", "2"), capture_output=True, text=True,
                           timeout=300, env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_paper_and_smollm_configs_list_their_dag_offline(tmp_path):
    """Parsing config/paper.yaml downloads nothing, and every GPU rule asks for a GPU."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    for configs in (["config/paper.yaml"], ["config/paper.yaml", "config/paper_math.yaml"], ["config/smollm.yaml"]):
        cmd = ["python", "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "wd"),
               "--configfile", *[str(REPO / c) for c in configs]]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
        assert out.returncode == 0, out.stderr[-3000:]
        text = out.stdout + out.stderr
        assert "world_seed" in text and "dpo" in text and "transfer" in text
        if configs[0] == "config/paper.yaml":
            jobs = text.split("\nrule ")
            score = next(j for j in jobs if j.startswith("score:"))
            assert "gpu=1" in score and "mem_mb=96000" in score
            assert "world_expert" in text and text.count("rule world_expert:") == 6
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))
