"""Lineage on a finished micro run: a change reruns exactly what depends on it, and a run killed with
SIGKILL at several points resumes (after `snakemake --unlock`) to the same tables as an uninterrupted one.

Both need a whole micro run of the real workflow; the uninterrupted run is built once per module.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import seed_world, snakemake_cmd
from conftest import workflow_config as micro_workflow_config

WORLD_TRAINING = {"world_split", "expert_data", "world_seed", "world_expert", "task_vector"}
LOOP = {"factory_initial", "factory_warmup", "sample", "filter", "score", "pairs", "dpo"}


def _run(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True, timeout=timeout)


def workflow_config(tiny_factory) -> dict:
    """The micro workflow with one arm, one algorithm file and two baseline methods (test_workflow.py
    covers the rest; what reruns is the same for each): the two whole runs of this file cost less."""
    from selfdev.algorithms import reference_paths

    cfg = micro_workflow_config(tiny_factory, [str(reference_paths()["mean"])])
    cfg["study"] = {**cfg["study"], "arms": ["dpo"]}
    cfg["baselines"] = {**cfg["baselines"], "methods": ["task_arithmetic", "ties"]}
    return cfg


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_factory, workflow_world):
    """An uninterrupted micro run, to the end of the study (the world built once per session)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    seed_world(workflow_world, root)
    (root / "micro.yaml").write_text(yaml.safe_dump(workflow_config(tiny_factory)))
    run = _run(root, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    return root


def _scheduled(workdir: Path, config: dict) -> set[str]:
    """The jobs a dry run with `config` would run, as `rule` or `rule[wildcards]`; the config on
    disk is put back afterwards."""
    path = workdir / "micro.yaml"
    original = path.read_text()
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        dry = _run(workdir, "-n", "--cores", "1")
    finally:
        path.write_text(original)
    assert dry.returncode == 0, dry.stderr[-3000:]
    text = dry.stdout + dry.stderr
    if "Nothing to be done" in text:
        return set()
    jobs, rule = set(), None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            if rule:
                jobs.add(rule)
            rule = m.group(1)
        elif rule and line.strip().startswith("wildcards:"):
            jobs.add(f"{rule}[{line.strip()[len('wildcards: '):]}]")
            rule = None
    if rule:
        jobs.add(rule)
    return jobs


def _rules(jobs: set[str]) -> set[str]:
    return {j.split("[")[0] for j in jobs}


def test_rerunning_a_finished_run_does_nothing(finished_run, tiny_factory):
    assert _scheduled(finished_run, workflow_config(tiny_factory)) == set()


def test_reordered_keys_rerun_nothing(finished_run, tiny_factory):
    def reverse(value):
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(v) for v in value]
        return value

    cfg = reverse(workflow_config(tiny_factory))
    assert list(cfg) != list(workflow_config(tiny_factory)) and list(cfg["sandbox"]) != list(workflow_config(tiny_factory)["sandbox"])
    assert _scheduled(finished_run, cfg) == set()


def test_report_only_keys_schedule_no_training_sampling_or_scoring(finished_run, tiny_factory):
    cfg = workflow_config(tiny_factory)
    cfg["world"] = {**cfg["world"], "report": {"ta_lambdas": [0.4, 0.8], "ties_densities": [0.3], "ties_lambdas": [1.0]}}
    jobs = _rules(_scheduled(finished_run, cfg))
    assert "world_report" in jobs
    assert not jobs & (WORLD_TRAINING | LOOP | {"score_algorithm", "check_algorithm", "final_test", "baseline",
                                                 "singles", "transfer"}), jobs


def test_a_new_transfer_expert_schedules_itself_and_the_transfer_study_only(finished_run, tiny_factory):
    cfg = workflow_config(tiny_factory)
    cfg["world"] = {**cfg["world"],
                    "transfer_experts": cfg["world"]["transfer_experts"] + [{"name": "t_distance", "skills": ["distance"]}]}
    jobs = _scheduled(finished_run, cfg)
    assert {"expert_data[expert=t_distance]", "world_expert[expert=t_distance]", "task_vector[expert=t_distance]",
            "transfer", "singles[family=transfer]"} <= jobs, jobs
    # Nothing of another expert, of the discovery world, of the loop or of the main family's baselines.
    assert not _rules(jobs) & ({"world_split", "world_seed", "world_report"} | LOOP | {"final_test", "score_algorithm"})
    others = {j for j in jobs if j.startswith(("expert_data", "world_expert", "task_vector")) and "t_distance" not in j}
    assert others == set(), others
    assert not {j for j in jobs if "family=main" in j}, jobs


def test_a_sandbox_limit_reruns_only_what_the_sandbox_touched(finished_run, tiny_factory):
    cfg = workflow_config(tiny_factory)
    cfg["sandbox"] = {**cfg["sandbox"], "cpu_s": 11}
    jobs = _scheduled(finished_run, cfg)
    rules = _rules(jobs)
    assert {"filter", "final_test", "transfer"} <= rules, rules
    # The world, its report, the factory's conversion and warm-up, sampling from it and the grid-tuned
    # baselines (trusted code, no sandbox) stay; a budget-matched baseline reruns because its budget
    # is the number of programs the (re-filtered) discovery run scored.
    assert not rules & (WORLD_TRAINING | {"world_report", "factory_initial", "factory_warmup", "singles"})
    assert not {j for j in jobs if j.startswith("baseline[") and "mode=grid" in j}, jobs
    assert "sample[arm=dpo, seed=0, it=1]" not in jobs and "sample[arm=dpo, seed=0, it=2]" in jobs


# --- SIGKILL at several points of a run ------------------------------------------------------------
# Rule logs whose appearance means the job has started: sampling, scoring, DPO, and the study's
# held-out scoring of the top programs.
KILL_POINTS = ["sample_dpo_s0_it1.log", "score_dpo_s0_it1.log", "dpo_dpo_s0_it1.log", "final_test_dpo_s0.log"]
TIMING_COLUMNS = {"gen_seconds", "probe_seconds", "score_seconds"}


def _table(path: Path) -> list[dict]:
    """A parquet table without its timing columns (wall seconds differ between any two runs)."""
    rows = pq.read_table(path).to_pylist()
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def _tables(results: Path) -> dict[str, object]:
    out = {}
    for path in sorted(results.rglob("*")):
        rel = str(path.relative_to(results))
        if path.name in ("candidates.parquet", "executable.parquet", "scores.parquet") or rel == "final/leaderboard.parquet":
            out[rel] = _table(path)
        elif path.name == "pairs.jsonl":
            out[rel] = path.read_bytes()
    return out


def test_sigkill_at_several_points_then_unlock_and_rerun_gives_identical_tables(finished_run, tmp_path, tiny_factory,
                                                                             workflow_world):
    seed_world(workflow_world, tmp_path)
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(workflow_config(tiny_factory)))
    logs = tmp_path / "results" / "logs"
    killed_at = []
    for point in KILL_POINTS:
        # The whole process group, as an OOM killer or a lost node would: no cleanup runs.
        proc = subprocess.Popen(snakemake_cmd(tmp_path, "--cores", "2"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 600
        while not (logs / point).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the run ended before reaching {point}"
        time.sleep(1.0)  # well inside the job
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        killed_at.append(point)
        if len(killed_at) == 1:  # as measured: the next run stops on Snakemake's directory lock until --unlock
            locked = _run(tmp_path, "--cores", "1", timeout=120)
            assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
        unlock = _run(tmp_path, "--unlock", "--cores", "1")
        assert unlock.returncode == 0, unlock.stderr[-2000:]
    assert killed_at == KILL_POINTS
    # No half-written file ever stands under a final name; the default profile reruns incomplete jobs.
    final = _run(tmp_path, "--cores", "2")
    assert final.returncode == 0, final.stderr[-3000:]
    ours, reference = _tables(tmp_path / "results"), _tables(finished_run / "results")
    # Two iterations' candidates, executable, scores and pairs, and the leaderboard.
    assert set(ours) == set(reference) and len(ours) == 2 * 4 + 1, sorted(ours)
    for name in reference:
        assert ours[name] == reference[name], name
    leftovers = [p for p in (tmp_path / "results").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
