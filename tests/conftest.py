import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GSM8K_DIR = Path(os.environ.get("SELFDEV_GSM8K_DIR", REPO.parent / "shared" / "data" / "gsm8k"))

# Micro world: every knob small so a whole world builds in seconds.
MICRO_WORLD = {
    "skills": ["add", "mul"],
    "experts": [{"name": "add", "skills": ["add"]}, {"name": "mul", "skills": ["mul"]}],
    "transfer_experts": [],
    "data": {"seed_train_per_skill": 200, "expert_train_per_skill": 100, "dev_per_skill": 10, "test_per_skill": 10},
    "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
    "seed_training": {"steps": 30, "lr": 0.003, "batch_size": 16},
    "expert_training": {"steps": 10, "lr": 0.001, "batch_size": 16},
    "report": {"ta_lambdas": [0.5, 1.0], "ties_densities": [0.5], "ties_lambdas": [1.0]},
}


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
    from selfdev import world
    from selfdev.config import expert_names
    from selfdev.paths import Paths
    from selfdev.taskvectors import write_task_vector

    root = tmp_path_factory.mktemp("world")
    cfg = micro_config(root / "results")
    p = Paths(cfg["results"])
    world.build_data(cfg["world"], cfg["seed"], p.data_dir())
    world.train_seed(cfg["world"], cfg["seed"], cfg["eval"]["prompt"], p.data_dir(), p.seed_dir())
    for e in expert_names(cfg):
        world.train_expert(cfg["world"], e, cfg["seed"], cfg["eval"]["prompt"], p.data_dir(), p.seed_dir(),
                           p.expert_dir(e))
        Path(p.task_vector(e)).parent.mkdir(parents=True, exist_ok=True)
        write_task_vector(p.seed_dir(), p.expert_dir(e), p.task_vector(e), cfg["merge"]["include"])
    return cfg


@pytest.fixture(scope="session")
def tiny_factory(tmp_path_factory):
    """A real (tiny, character-level) factory checkpoint that writes library-like bodies."""
    from factory_fixture import build_tiny_factory

    return build_tiny_factory(tmp_path_factory.mktemp("factory") / "tiny")
