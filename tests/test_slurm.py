"""The Slurm profile on a real Slurm: a one-node cluster started on this machine (slurm_cluster.py),
a micro workflow run to its end through `--workflow-profile profiles/slurm`, then a run whose job is
cancelled with scancel, and the rerun that completes it.

Skips (saying why) only where Slurm cannot be installed and SELFDEV_CI is unset; `.ci/run` sets it,
so in CI a missing Slurm fails the test.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, workflow_config
import slurm_cluster

PROFILE = REPO / "profiles" / "slurm"


def _need_slurm() -> None:
    why = slurm_cluster.ensure_installed()
    if why is None:
        return
    if os.environ.get("SELFDEV_CI"):
        pytest.fail(f"Slurm required in CI: {why}")
    pytest.skip(why)


def _micro_config(tiny_factory) -> dict:
    """The micro workflow, one arm and one iteration, one algorithm file, every study part small: about 30 jobs."""
    from selfdev.algorithms import reference_paths

    cfg = workflow_config(tiny_factory, [str(reference_paths()["mean"])])
    cfg["device"] = "cpu"
    cfg["loop"]["iterations"] = 1
    cfg["study"]["arms"] = ["dpo"]
    cfg["world"] = {**cfg["world"], "transfer_experts": []}
    cfg["baselines"] = {"grid_size": 1, "methods": ["task_arithmetic"], "budget_matched": False}
    return cfg


def _snakemake(cluster, workdir: Path, *args: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "micro.yaml"), "--workflow-profile", str(PROFILE),
           # This cluster has no accounting database: job states come from squeue (see the profile).
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
           # A finished job is seen within a second, not ten (the default), on this one-node test cluster.
           "--seconds-between-status-checks", "1",
           "--latency-wait", "5", *args]
    return subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _completed_job_ids(controller_log: str) -> set[str]:
    """Slurm jobs the controller saw through to completion."""
    return set(re.findall(r"_job_complete: JobId=(\d+) done", controller_log))


def test_profile_runs_the_workflow_through_slurm(tmp_path, tiny_factory):
    """A CPU-only cluster: the node has no GRES and the config says device cpu."""
    _need_slurm()
    work = tmp_path / "work"
    work.mkdir()
    (work / "micro.yaml").write_text(yaml.safe_dump(_micro_config(tiny_factory)))
    with slurm_cluster.one_node_cluster(tmp_path / "slurm") as cluster:
        run = _snakemake(cluster, work)
        out, _ = run.communicate(timeout=1500)
        assert run.returncode == 0, out[-4000:]
        results = work / "results"
        assert (results / "final" / "study.html").is_file() and (results / "report.html").is_file()
        # Every job went through Slurm but the target-only rules (no script: Snakemake runs them in
        # place): each was submitted, and the controller ran it to completion.
        n_jobs = int(re.search(r"(\d+) of \1 steps \(100%\) done", out).group(1))
        local = re.findall(r"^localrule (\w+):", out, re.M)
        assert set(local) <= {"all", "study_targets"}, local
        submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S+/slurm_logs/rule_(\w+?)/", out))
        assert len(submitted) == n_jobs - len(local) > 20, (len(submitted), n_jobs, local)
        assert set(submitted) <= _completed_job_ids(cluster.log())
        assert {"world_seed", "sample", "score", "dpo", "final_test", "study"} <= set(submitted.values())
        # This node has no GRES at all: with device cpu no job asked for a GPU (one that did would
        # have been refused at submission, "Invalid generic resource (gres) specification").
        jobs = cluster.cmd("scontrol", "show", "job", "--oneliner").stdout.splitlines()
        assert len(jobs) >= len(submitted) and not [j for j in jobs if _gpu_job(j)], jobs[:1]
        assert all(_resource_fields(j) for j in jobs)  # the fields are there to look in

        # A second run (the DPO step redone): its running job is cancelled with scancel; that run
        # fails, naming the job, and leaves nothing half-written; the rerun completes it.
        factory = results / "loop" / "dpo" / "seed0" / "iter1" / "factory"
        scores = results / "loop" / "dpo" / "seed0" / "iter1" / "scores.parquet"
        scored_at = scores.stat().st_mtime_ns
        second = _snakemake(cluster, work, "--forcerun", "dpo", "--retries", "0")
        deadline, cancelled = time.monotonic() + 600, None
        while cancelled is None and time.monotonic() < deadline and second.poll() is None:
            for line in cluster.cmd("squeue", "-h", "-t", "RUNNING", "-o", "%i %j %k").stdout.splitlines():
                job_id, *_ = line.split()
                if "rule_dpo" in line:
                    cluster.cmd("scancel", job_id)
                    cancelled = job_id
            time.sleep(0.5)
        out2, _ = second.communicate(timeout=600)
        assert cancelled, out2[-3000:]
        assert second.returncode != 0, out2[-3000:]
        assert "dpo" in out2 and re.search(r"Error in rule dpo|rule dpo.*failed|Error executing rule dpo", out2), out2[-3000:]
        assert not (factory / "config.json").exists()  # the cancelled job's output is not left behind
        third = _snakemake(cluster, work, "--until", "dpo")  # the cancelled job redone (not what follows it)
        out3, _ = third.communicate(timeout=1500)
        assert third.returncode == 0, out3[-4000:]
        assert (factory / "config.json").is_file() and (factory / "train_log.json").is_file()
        assert scores.stat().st_mtime_ns == scored_at  # what was computed before is kept
        assert "dpo" in out3
    # The daemons this test started are gone (stopped by PID).
    time.sleep(1)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "slurm") not in ps


def _resource_fields(job: str) -> str:
    """A job's resource fields in `scontrol show job --oneliner` (TRES, TresPerNode, ...), not its paths,
    whose folder names may say anything."""
    return " ".join(re.findall(r"\b(?:Tres\w*|TRES|Gres\w*)=\S*", job))


def _gpu_job(job: str) -> bool:
    return "gpu" in _resource_fields(job)


def test_gpu_rules_ask_slurm_for_the_configured_gpus(tmp_path, tiny_factory):
    """A GPU cluster (one generic GPU, no device file): with device cuda the same profile submits the
    model rules with the config's GPU count and the data rules without; the GPU job then fails on this
    machine's CPU with the one-line device error, which the run reports."""
    _need_slurm()
    work = tmp_path / "work"
    work.mkdir()
    cfg = _micro_config(tiny_factory)
    cfg["device"] = "cuda"
    (work / "micro.yaml").write_text(yaml.safe_dump(cfg))
    with slurm_cluster.one_node_cluster(tmp_path / "slurm", gpus=1) as cluster:
        run = _snakemake(cluster, work, "--until", "world_seed", "--retries", "0")
        out, _ = run.communicate(timeout=600)
        assert run.returncode != 0, out[-3000:]  # no CUDA here: the GPU job fails, as it should
        jobs = cluster.cmd("scontrol", "show", "job", "--oneliner").stdout.splitlines()
        seed = [j for j in jobs if "rule_world_seed" in j]
        split = [j for j in jobs if "rule_world_split" in j]
        assert seed and all(_gpu_job(j) for j in seed), seed[:1]
        assert split and _resource_fields(split[0]) and not any(_gpu_job(j) for j in split), split[:1]
        logs = "".join(p.read_text(errors="replace") for p in (work / "results" / "logs").glob("world_seed*.log"))
        assert "device: 'cuda' was requested but torch sees no CUDA GPU" in logs, logs[-2000:]
