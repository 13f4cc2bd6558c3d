"""Building a micro toy world with the functions the workflow runs (no pytest: benchmarks/gpu_check.py
uses it on machines without the test dependencies)."""

# Micro world: every knob small so a whole world builds in seconds.
MICRO_WORLD = {
    "skills": ["price", "distance"],
    "experts": [{"name": "price", "skills": ["price"]}, {"name": "distance", "skills": ["distance"]}],
    "transfer_experts": [],
    "data": {"seed_train_per_skill": 200, "expert_train_per_skill": 100, "dev_per_skill": 10, "test_per_skill": 10},
    "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
    "seed_training": {"steps": 30, "lr": 0.003, "batch_size": 16},
    "expert_training": {"steps": 10, "lr": 0.001, "batch_size": 16},
    "report": {"ta_lambdas": [0.5, 1.0], "ties_densities": [0.5], "ties_lambdas": [1.0]},
}

# vLLM's CPU attention takes head sizes of 32 and more: the micro world with head size 32, trained longer.
HEAD32_WORLD = {**MICRO_WORLD,
                "model": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
                "seed_training": {"steps": 300, "lr": 0.01, "batch_size": 32},
                "expert_training": {"steps": 40, "lr": 0.02, "batch_size": 16}}


def build_world(cfg: dict) -> dict:
    """Data splits, M0, every expert of `world.experts` and their task vectors, under cfg["results"]."""
    from selfdev.paths import Paths
    from selfdev.world import build
    from selfdev.world.taskvectors import write_task_vector

    p, prompt = Paths(cfg["results"]), cfg["eval"]["prompt"]
    for split in build.SPLITS:
        build.write_split(split=split, config=cfg, out=p.data(split), prompt=prompt)
    build.seed_step(config=cfg, prompt=prompt, data=p.data("seed_train"), out_dir=p.seed_dir())
    for entry in cfg["world"]["experts"]:
        e, expert_cfg = entry["name"], {**cfg, "expert": entry}
        build.write_expert_data(name=e, config=expert_cfg, out=p.data(f"expert_{e}"))
        build.expert_step(name=e, config=expert_cfg, prompt=prompt, data=p.data(f"expert_{e}"),
                          seed_dir=p.seed_dir(), out_dir=p.expert_dir(e))
        write_task_vector(p.seed_dir(), p.expert_dir(e), p.task_vector(e), cfg["merge"]["include"])
    return cfg
