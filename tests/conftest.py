import os
from pathlib import Path

import pytest

import selfdev  # noqa: F401  - first, so its CPU-numerics pinning precedes any torch import

REPO = Path(__file__).resolve().parents[1]
GSM8K_DIR = Path(os.environ.get("SELFDEV_GSM8K_DIR", REPO.parent / "shared" / "data" / "gsm8k"))

from world_fixture import MICRO_WORLD, build_world  # noqa: E402  (re-exported for the tests)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One of several test processes on the cores: torch at one thread each (two processes at two threads
    # on two cores ran 18x slower than at one; a test that needs more sets it itself).
    import torch

    torch.set_num_threads(1)


def micro_config(results: Path) -> dict:
    from selfdev.config import validate_config

    return validate_config({
        "results": str(results),
        "world": MICRO_WORLD,
        "eval": {"prompt": str(REPO / "config" / "prompts" / "toy.yaml"), "max_new_tokens": 12, "batch_size": 32},
        "sandbox": {"probe_wall_s": 5, "merge_wall_s": 10, "cpu_s": 10, "memory_mb": 1024},
    })


def gsm8k_file(name: str) -> Path:
    path = GSM8K_DIR / name
    if not path.is_file():
        pytest.skip(f"real GSM8K file {path} not present (set SELFDEV_GSM8K_DIR to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory):
    """A real (tiny) world built with the same functions the workflow runs: data, M0, experts, task vectors."""
    root = tmp_path_factory.mktemp("world")
    cfg = micro_config(root / "results")
    build_world(cfg)
    return cfg


@pytest.fixture(scope="session")
def tiny_factory(tmp_path_factory):
    """A real (tiny, character-level) factory checkpoint that writes library-like bodies."""
    from factory_fixture import build_tiny_factory

    return build_tiny_factory(tmp_path_factory.mktemp("factory") / "tiny")


def sandbox(phase: str = "probe", **keys):
    """SandboxLimits built the way the workflow builds them: from a validated config (`sandbox.*` keys)."""
    from selfdev.config import sandbox_limits, validate_config

    wall = {"probe_wall_s" if phase == "probe" else "merge_wall_s": keys.pop("wall_s")} if "wall_s" in keys else {}
    return sandbox_limits(validate_config({"sandbox": {**keys, **wall}}), phase)


def defaults(*path: str):
    """A section of the default config (the schema's defaults), e.g. defaults("loop")."""
    from selfdev.config import validate_config

    out = validate_config({})
    for key in path:
        out = out[key]
    return out


# The micro workflow run: a slightly stronger world than MICRO_WORLD, so that programs score
# differently and the loop forms real preference pairs; every loop and study knob small.
WORKFLOW_WORLD = {**MICRO_WORLD,
                  "model": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
                  "data": {**MICRO_WORLD["data"], "dev_per_skill": 25},
                  "seed_training": {"steps": 500, "lr": 0.01, "batch_size": 32},
                  # Large expert updates: scaled sums break the model, averages do not, so scores differ.
                  "expert_training": {"steps": 40, "lr": 0.02, "batch_size": 16},
                  "transfer_experts": [{"name": "t_price", "skills": ["price"]}, {"name": "t_both", "skills": ["price", "distance"]}]}


def workflow_config(tiny_factory, algorithms: list[str] | None = None) -> dict:
    """The micro workflow's config (for `--configfile`), with the tiny factory as the initial factory."""
    return {
        "world": WORKFLOW_WORLD,
        # Batches of 10 of the 50 dev problems: racing has 5 chunks to cut programs at.
        "eval": {"max_new_tokens": 12, "batch_size": 10},
        "algorithms": algorithms or [],
        "sandbox": {"probe_wall_s": 3, "merge_wall_s": 10, "cpu_s": 10, "memory_mb": 1024},
        "factory": {"model": str(tiny_factory), "prompt": str(tiny_factory / "prompt.txt"),
                    "warmup": {"enabled": True, "epochs": 1, "lr": 0.001, "batch_size": 8, "lora_r": 4, "lora_alpha": 8}},
        "loop": {"iterations": 2, "n_samples": 8, "t1": 0.6, "beta": 0.2, "max_new_tokens": 120, "batch_size": 8,
                 "min_chosen": 1, "min_rejected": 1, "max_pairs": 4,
                 # The last DPO round too (the default skips it): the micro runs test the factory chain,
                 # its lineage and DPO through Slurm to the end; test_evolve dry-runs the default.
                 "final_dpo": True},
        "dpo": {"lr": 0.001, "epochs": 1, "batch_size": 2, "lora_r": 4, "lora_alpha": 8},
        "study": {"top_k": 3, "bootstrap": 200},
        # One method of each kind of plumbing: mergekit with one and two hyper-parameters and with none
        # (model_stock: no budget search), a shipped program (TSV-M) and a layer-wise rule (LiNeS).
        # test_sota_baselines.py runs every method's rule function in-process.
        "baselines": {"grid_size": 2, "methods": ["task_arithmetic", "ties", "model_stock", "tsv", "lines_ta"]},
        "transfer": {"top_k": 2},
    }


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(workdir / "micro.yaml"), *args]


# The files that run whole workflows, longest first: with `pytest -n 2 --dist loadfile` (make test) the
# two workers start on the long ones and fill in with the short files, so neither waits at the end.
HEAVY_FILES = ("test_reruns.py", "test_workflow.py", "test_slurm.py", "test_workflow_hf.py", "test_scaleout.py",
               "test_hf_world.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        name = item.path.name
        return HEAVY_FILES.index(name) if name in HEAVY_FILES else len(HEAVY_FILES)

    items.sort(key=rank)  # stable: the order within a file, and among the other files, stays


@pytest.fixture(scope="session")
def workflow_world(tmp_path_factory, tiny_factory) -> Path:
    """The micro workflow's world (WORKFLOW_WORLD: data, M0, experts, task vectors, multi-task model,
    report) built once by the real Snakefile, with Snakemake's records of it; `seed_world` copies it
    into a run's working directory, where Snakemake finds it complete and schedules none of it. Built
    once per test session, also under pytest-xdist (a file lock in the session's shared folder)."""
    import fcntl
    import subprocess

    import yaml

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root, done = shared / "workflow-world", shared / "workflow-world.done"
    with open(shared / "workflow-world.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            root.mkdir(exist_ok=True)
            (root / "micro.yaml").write_text(yaml.safe_dump(workflow_config(tiny_factory)))
            experts = [e["name"] for e in WORKFLOW_WORLD["experts"] + WORKFLOW_WORLD["transfer_experts"]]
            targets = ["results/world/report.json", "results/world/multitask/config.json",
                       *(f"results/world/task_vectors/{e}.safetensors" for e in experts)]
            run = subprocess.run(snakemake_cmd(root, "--cores", "2", *targets), capture_output=True, text=True,
                                 timeout=900)
            assert run.returncode == 0, run.stderr[-3000:]
            done.touch()
    return root


def seed_world(workflow_world: Path, workdir: Path) -> None:
    """The built micro world (results/ and Snakemake's metadata of it), copied with its times into `workdir`."""
    import shutil

    shutil.copytree(workflow_world / "results", workdir / "results", dirs_exist_ok=True)
    shutil.copytree(workflow_world / ".snakemake" / "metadata", workdir / ".snakemake" / "metadata", dirs_exist_ok=True)
