"""Runs the real Snakefile on a micro config in a temporary directory."""

import shutil
import subprocess
import sys
from pathlib import Path

import json

import yaml

from conftest import MICRO_WORLD, REPO
from selfdev.algorithms import reference_paths
from selfdev.api import score_file, world_inputs
from selfdev.config import validate_config


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "micro.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


HOSTILE = {
    "fork_bomb": ("forbidden", "import torch\ndef merge(t):\n    while True:\n        torch.os.fork()\n"),
    "canary_writer": ("forbidden", "def merge(t):\n    open({canary!r}, 'w').write('pwned')\n    return t[0]\n"),
    "spinner": ("timeout", "def merge(t):\n    while True:\n        pass\n"),
    "nan_maker": ("non_finite", "def merge(t):\n    return t[0] * float('nan')\n"),
}


def test_workflow_micro_run_then_nothing_to_do(tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("canary")
    programs = [str(p) for p in sorted(reference_paths().values())]
    for name, (_, src) in HOSTILE.items():
        path = tmp_path / "programs" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(src.replace("{canary!r}", repr(str(canary))))
        programs.append(str(path))
    cfg = {"world": MICRO_WORLD, "eval": {"max_new_tokens": 12, "batch_size": 32}, "algorithms": programs,
           "sandbox": {"probe_wall_s": 3, "merge_wall_s": 10, "cpu_s": 10, "memory_mb": 1024}}
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    run = _snakemake(tmp_path, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    res = tmp_path / "results"
    assert canary.read_text() == "canary"
    for name, (category, _) in HOSTILE.items():
        rec = json.loads((res / "algorithms" / name / "score.json").read_text())
        assert rec["executable"] is False and rec["category"] == category and rec["accuracy"] is None
    # Benign programs score exactly as in a clean run beside no hostile ones.
    config = validate_config(dict(yaml.safe_load((tmp_path / "micro.yaml").read_text()), results=str(res)))
    files = world_inputs(config, "dev")
    for name, path in reference_paths().items():
        clean = score_file(path, config, "dev", files["seed_dir"], files["task_vectors"], files["rows"])
        rec = json.loads((res / "algorithms" / name / "score.json").read_text())
        assert rec["executable"] and rec["accuracy"] == clean["accuracy"], name
    for f in ["world/report.md", "world/report.json", "algorithms/summary.md", "world/seed/model.safetensors",
              "world/task_vectors/add.safetensors", "world/experts/mul/model.safetensors",
              "algorithms/ties/score.json", "logs/world_seed.log", "benchmarks/world_seed.tsv"]:
        assert (res / f).is_file(), f
    summary = (res / "algorithms" / "summary.md").read_text()
    assert all(name in summary for name in ("task_arithmetic", "ties", "mean"))
    dry = _snakemake(tmp_path, "-n", "--cores", "1")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr

    # Deleting one score reruns that score and the summary only.
    (res / "algorithms" / "mean" / "score.json").unlink()
    dry = _snakemake(tmp_path, "-n", "--cores", "1", "--quiet", "rules")
    text = dry.stdout + dry.stderr
    assert "score_algorithm" in text and "algorithms_summary" in text
    assert "world_seed" not in text and "world_expert" not in text


def test_bad_config_fails_before_running(tmp_path):
    (tmp_path / "micro.yaml").write_text("world:\n  data:\n    dev_per_skill: many\n")
    run = _snakemake(tmp_path, "-n", "--cores", "1")
    assert run.returncode != 0
    assert "dev_per_skill" in run.stdout + run.stderr and not (tmp_path / "results").exists()


def test_lint_is_clean(tmp_path):
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "micro.yaml")
    run = _snakemake(tmp_path, "--lint")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Lints for" not in run.stdout + run.stderr
