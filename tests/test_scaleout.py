"""Scale-out without a cluster: sharded scoring gives the table one job gives, resources come from
config, and the conda environments do not depend on the working directory."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, seed_world, snakemake_cmd, workflow_config
from selfdev.config import ConfigError, GPU_RULES, asks_for_gpus, rule_resources, rule_threads, validate_config

# Columns that measure time, not results: the only ones allowed to differ between two scorings.
TIMING = {"score_seconds"}


def _table(path) -> list[dict]:
    rows = pq.read_table(path).to_pylist()
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_sharded_scoring_writes_the_table_one_job_writes(tmp_path, tiny_factory, workflow_world):
    seed_world(workflow_world, tmp_path)
    cfg = workflow_config(tiny_factory)
    cfg["loop"]["iterations"] = 1
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/loop/dpo/seed0/iter1/scores.parquet"  # outputs are relative to the working directory
    scores = tmp_path / target
    one = subprocess.run(snakemake_cmd(tmp_path, "--cores", "2", target), capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    single = _table(scores)
    assert sum(r["status"] == "new" for r in single) >= 3  # enough programs to fill three shards
    shutil.copy(scores, tmp_path / "single.parquet")

    cfg["eval"]["shards"] = 3
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    # eval.shards is not a param of scoring (it cannot change a score): only the forced rerun scores again.
    dry = subprocess.run(snakemake_cmd(tmp_path, "-n", "--cores", "2", target), capture_output=True, text=True, timeout=300)
    assert "score_gather" in dry.stdout  # the gather now needs its shards
    three = subprocess.run(snakemake_cmd(tmp_path, "--cores", "2", target, "--forcerun", "score"),
                           capture_output=True, text=True, timeout=900)
    assert three.returncode == 0, three.stderr[-3000:]
    shards = sorted((scores.parent / "shards").glob("scores.*-of-3.parquet"))
    assert [p.name for p in shards] == [f"scores.{k}-of-3.parquet" for k in range(3)]
    sizes = [pq.read_table(p).num_rows for p in shards]
    assert all(n >= 1 for n in sizes) and sum(sizes) == sum(r["status"] == "new" for r in single)
    assert _table(scores) == single
    log = (tmp_path / "results" / "logs" / "score_dpo_s0_it1.log").read_text()
    assert "'gathered'" in log and "'shards': 3" in log  # the gather did not score again


def test_final_test_shards_gather_to_the_unsharded_table(tmp_path, micro_world):
    """The study's test scoring: ranks split over shards, gathered in rank order."""
    from selfdev import io
    from selfdev.loop import tables as loop
    from selfdev.paths import Paths
    from selfdev.algorithms import reference_paths
    from selfdev.study.steps import final_test_step, gather_final_test_step, FINAL_V

    p = Paths(micro_world["results"])
    progs = []
    for i, (name, path) in enumerate(sorted(reference_paths().items())):
        code = Path(path).read_text()
        progs.append({"candidate_id": f"c{i}", "iteration": 1, "code_hash": name, "status": "new", "executable": True,
                      "category": "ok", "reason": "", "dev_accuracy": 0.5 + 0.1 * i, "per_skill": "{}",
                      "score_seconds": 0.0, "body": code, "code": code, "factory": "f", "scored_in_iteration": 1})
    scores = tmp_path / "scores.parquet"
    io.write_table(progs, str(scores), loop.SCORES_V, loop.SCORE_COLUMNS)
    config = {**micro_world, "study": {**micro_world["study"], "top_k": 3}}
    common = dict(config=config, arm="dpo", seed=0, score_paths=[str(scores)], seed_dir=p.seed_dir(),
                  task_vectors=[p.task_vector(e["name"]) for e in micro_world["world"]["experts"]],
                  test_path=p.data("test"), shots_path=p.data("shots"), threads=1)
    final_test_step(**common, out_path=str(tmp_path / "one.parquet"))
    parts = [str(tmp_path / f"part{k}.parquet") for k in range(2)]
    for k, part in enumerate(parts):
        final_test_step(**common, out_path=part, shard=k, shards=2)
    assert [r["rank"] for r in io.read_table(parts[0], FINAL_V)] == [1, 3]
    gather = dict(config=config, score_paths=[str(scores)])
    gather_final_test_step(**gather, shard_paths=parts, out_path=str(tmp_path / "gathered.parquet"))
    assert pq.read_table(tmp_path / "gathered.parquet").to_pylist() == pq.read_table(tmp_path / "one.parquet").to_pylist()
    with pytest.raises(ValueError, match="missing"):
        gather_final_test_step(**gather, shard_paths=parts[:1], out_path=str(tmp_path / "bad.parquet"))


def test_gather_refuses_shards_of_other_programs():
    from selfdev.loop.tables import gather_shards, shard_of

    todo = [{"candidate_id": f"c{i}"} for i in range(7)]
    parts = [shard_of(todo, k, 3) for k in range(3)]
    assert [len(p) for p in parts] == [3, 2, 2]
    assert gather_shards(parts[::-1], todo) == todo
    with pytest.raises(ValueError, match="unexpected"):
        gather_shards(parts + [[{"candidate_id": "stale"}]], todo)
    with pytest.raises(ValueError, match="two score shards"):
        gather_shards(parts + [parts[0][:1]], todo)
    with pytest.raises(ValueError, match="outside"):
        shard_of(todo, 3, 3)


def test_rule_resources_come_from_config():
    cfg = validate_config({"device": "cuda", "resources": {"mem_mb": 9000, "runtime": 30, "gpu": 2,
                                                           "rules": {"score": {"mem_mb": 60000, "threads": 8},
                                                                     "dpo": {"gpu": 4, "runtime": 600}}}})
    assert rule_resources(cfg, "score") == {"mem_mb": 60000, "runtime": 30, "gpu": 2}
    assert rule_resources(cfg, "dpo") == {"mem_mb": 9000, "runtime": 600, "gpu": 4}
    assert rule_resources(cfg, "factory_initial") == {"mem_mb": 9000, "runtime": 30}  # converts on the CPU
    assert rule_resources(cfg, "world_expert", gpu=False)["gpu"] == 0  # an imported expert
    assert rule_resources(cfg, "task_vector", mem_mb=1000)["mem_mb"] == 1000
    assert rule_threads(cfg, "score", 1) == 8 and rule_threads(cfg, "sample", 3) == 3
    cpu = validate_config({"device": "cpu", "resources": {"rules": {"score": {"gpu": 1}}}})
    assert rule_resources(cpu, "score")["gpu"] == 0  # the CPU pinned: no GPU asked for
    # auto asks for GPUs only where the planning machine has one (a CPU-only cluster's login node: none)
    assert asks_for_gpus("auto", host_has_gpu=False) is False and asks_for_gpus("auto", host_has_gpu=True) is True
    assert asks_for_gpus("cuda", host_has_gpu=False) is True and asks_for_gpus("cpu", host_has_gpu=True) is False
    auto = validate_config({"resources": {"gpu": 3}})
    has_gpu = Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()
    assert rule_resources(auto, "score")["gpu"] == (3 if has_gpu else 0)
    with pytest.raises(ConfigError, match=r"resources\.rules: 'filter' is not one of"):
        validate_config({"resources": {"rules": {"filter": {"mem_mb": 100}}}})
    with pytest.raises(ConfigError, match=r"resources\.rules\.task_vector\.gpu"):
        validate_config({"resources": {"rules": {"task_vector": {"gpu": 1}}}})
    with pytest.raises(ConfigError, match=r"resources\.rules\.score"):
        validate_config({"resources": {"rules": {"score": {"gpus": 1}}}})


def _job_resources(tmp_path, extra: dict) -> dict[str, str]:
    """Each rule's first job in a dry run, as Snakemake prints it: its `threads:` and `resources:` lines."""
    cfg = {"device": "cuda", "resources": extra}
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump(cfg))
    run = subprocess.run(snakemake_cmd(tmp_path, "-n", "--cores", "4", "--resources", "gpu=4"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out, rule = {}, None
    for line in run.stdout.splitlines():
        if line.startswith("rule "):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith(("threads:", "resources:")) and rule:
            key = line.split(":", 1)[0].strip()
            out.setdefault(rule, {}).setdefault(key, line.split(":", 1)[1].strip())
    return {r: f"threads={v.get('threads', '1')}, {v.get('resources', '')}" for r, v in out.items()}


def test_dry_run_jobs_carry_the_configured_resources(tmp_path):
    res = _job_resources(tmp_path, {"mem_mb": 5000, "rules": {"score": {"mem_mb": 7000, "gpu": 2, "threads": 3}}})
    assert res["score"].startswith("threads=3,") and res["sample"].startswith("threads=1,")
    assert "mem_mb=7000" in res["score"] and "gpu=2" in res["score"]
    assert "mem_mb=5000" in res["sample"] and "gpu=1" in res["sample"]
    assert "gpu" not in res["factory_initial"]
    assert set(GPU_RULES) >= {"sample", "score", "dpo", "world_seed", "world_expert", "factory_warmup"}


ENV_DIR = REPO / "workflow" / "envs"
# Import names whose distribution is named otherwise.
DISTRIBUTION = {"yaml": "pyyaml", "huggingface_hub": "huggingface_hub", "math_verify": "math-verify",
                "snakemake": "snakemake", "vllm": "vllm"}


def _imports(root: Path) -> set[str]:
    names = set()
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _env_packages(path: Path) -> set[str]:
    env = yaml.safe_load(path.read_text())
    pkgs = set()
    for dep in env["dependencies"]:
        for spec in (dep["pip"] if isinstance(dep, dict) else [dep]):
            assert not spec.startswith("-e") and ".." not in spec, f"{path.name}: {spec} depends on the working directory"
            name = spec.split("==")[0].split(">=")[0].split("<")[0].split("=")[0].strip().lower()
            pkgs.add(name.replace("_", "-"))
    return pkgs


def test_conda_envs_pin_every_imported_dependency():
    third_party = _imports(REPO / "src" / "selfdev") - set(sys.stdlib_module_names) - {"selfdev", "selfdev_blocks", "vllm"}
    for env_file in ("selfdev.yaml", "vllm.yaml"):
        pkgs = _env_packages(ENV_DIR / env_file)
        for mod in sorted(third_party):
            dist = DISTRIBUTION.get(mod, mod).replace("_", "-").lower()
            assert dist in pkgs, f"{env_file} lacks {dist} (imported as {mod})"
        env = yaml.safe_load((ENV_DIR / env_file).read_text())
        pins = [d for d in env["dependencies"] if isinstance(d, str)] + \
               [s for d in env["dependencies"] if isinstance(d, dict) for s in d["pip"]]
        # Exact versions only: `name==x.y` (pip) or `name=x.y` (conda); never `>=`, `<` or a bare name.
        unpinned = [s for s in pins if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==?[0-9][\w.+]*", s)]
        assert not unpinned, f"{env_file}: not pinned to one version: {unpinned}"
    assert "vllm" in _env_packages(ENV_DIR / "vllm.yaml")


CONDA_STUB = """#!/bin/sh
case "$*" in
  "info --json") echo '{"conda_prefix": "/opt/conda", "platform": "linux-64", "envs_dirs": []}';;
  "--version") echo "conda 24.7.1";;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}';;
  *) echo "conda stub: $*" >&2; exit 1;;
esac
"""


def test_conda_envs_resolve_from_another_working_directory(tmp_path):
    """`--sdm conda` dry run from a directory that is not the repository: every rule's env file is
    found (vllm.yaml for the vLLM engines). Conda channels are unreachable here, so no env is created;
    where conda is missing a stub answers the three queries Snakemake makes before planning
    (any other conda call fails the test)."""
    import os

    (tmp_path / "micro.yaml").write_text(yaml.safe_dump({"eval": {"engine": "vllm"}, "factory": {"engine": "vllm"}}))
    env = dict(os.environ)
    if not shutil.which("conda"):
        stub = tmp_path / "bin" / "conda"
        stub.parent.mkdir()
        stub.write_text(CONDA_STUB)
        stub.chmod(0o755)
        env["PATH"] = f"{stub.parent}{os.pathsep}{env['PATH']}"
    run = subprocess.run(snakemake_cmd(tmp_path, "-n", "--cores", "1", "--sdm", "conda"),
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for name in ("selfdev.yaml", "vllm.yaml"):
        line = next((l for l in out.splitlines() if l.endswith(f"envs/{name} will be created.")), None)
        assert line is not None, out[-3000:]
        assert Path(line.split()[2]).resolve() == ENV_DIR / name


def test_vllm_versions_and_swap_reports_are_checked():
    """The vLLM engine refuses an untested vLLM in one line, and a swap whose live outputs differ from
    the written weights (a worker's report) fails naming the tensor; within tolerance it passes."""
    from selfdev.scoring.engines import check_swap, require_tested_vllm

    require_tested_vllm("0.32.0")
    require_tested_vllm("0.33.0")
    with pytest.raises(RuntimeError, match=r"vLLM 0\.31\.2 is not a version the weight swap is tested with \(0\.32\.x, 0\.33\.x\)"):
        require_tested_vllm("0.31.2")
    with pytest.raises(RuntimeError, match="vLLM 0.34.1"):
        require_tested_vllm("0.34.1")
    ok = {"checked": 3, "worst": 2e-7, "worst_name": "model.layers.0.mlp.up_proj.weight", "unchecked": []}
    check_swap([ok, ok], "float32")
    check_swap([{**ok, "worst": 5e-3}], "bfloat16")  # bf16 output rounding: fine
    stale = {**ok, "worst": 0.3, "worst_name": "model.layers.1.mlp.down_proj.weight"}
    with pytest.raises(RuntimeError, match=r"worker 1's model\.layers\.1\.mlp\.down_proj\.weight computes outputs 0\.3"):
        check_swap([ok, stale], "float32")
    with pytest.raises(RuntimeError, match="did not report"):
        check_swap([True], "float32")
