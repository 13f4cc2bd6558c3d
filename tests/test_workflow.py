"""Runs the real Snakefile on a micro config in a temporary directory."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import MICRO_WORLD, REPO


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "micro.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def test_workflow_micro_run_then_nothing_to_do(tmp_path):
    cfg = {"world": MICRO_WORLD, "eval": {"max_new_tokens": 12, "batch_size": 32},
           "sandbox": {"probe_wall_s": 5, "merge_wall_s": 10, "cpu_s": 10, "memory_mb": 1024}}
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    run = _snakemake(tmp_path, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    res = tmp_path / "results"
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
