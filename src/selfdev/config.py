"""Loading and validating the workflow config (the same JSON schema Snakemake validates against).

Every key has a default in workflow/schemas/config.schema.yaml; `load_config` fills them, so code
reads a complete dict. Errors name the offending key and what was expected.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ValueError):
    pass


def load_schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def _fill_defaults(schema: dict, value: Any) -> Any:
    if schema.get("type") == "object" and isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _fill_defaults(sub, value[key])
    return value


def validate_config(config: dict | None, origin: str = "config") -> dict:
    """A validated copy of `config` with every default filled in (from the schema, their only home).

    Raises ConfigError with one line naming the first offending key; the workflow (Snakefile) and
    the CLI both call this, so they accept and refuse exactly the same configs."""
    import jsonschema

    config = _fill_defaults(load_schema(), copy.deepcopy(config or {}))
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{origin}: {key}: {_one_line(err.message)}{more}")
    _check_across_keys(config, origin)
    return config


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _check_across_keys(config: dict, origin: str) -> None:
    """What a JSON schema cannot say: unique names, known skills, ordered ranges, distinct file names."""
    names = [e["name"] for e in config["world"]["experts"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"{origin}: world.experts: expert names must be unique, got {names}")
    transfer = [e["name"] for e in config["world"]["transfer_experts"]]
    if len(set(transfer)) != len(transfer) or set(transfer) & set(names):
        raise ConfigError(f"{origin}: world.transfer_experts: names must be unique and differ from "
                          f"world.experts {names}, got {transfer}")
    skills = set(config["world"]["skills"])
    for family in ("experts", "transfer_experts"):
        for e in config["world"][family]:
            if ("skills" in e) == ("model" in e):
                raise ConfigError(f"{origin}: world.{family}.{e['name']}: give either `skills` (fine-tuned by the "
                                  "workflow) or `model` (an existing checkpoint), not both or neither")
            if set(e.get("skills", [])) - skills:
                raise ConfigError(f"{origin}: world.{family}.{e['name']}: skills "
                                  f"{sorted(set(e['skills']) - skills)} are not in world.skills {sorted(skills)}")
    if len(transfer) == 1:
        raise ConfigError(f"{origin}: world.transfer_experts: a family needs at least 2 experts (or none)")
    for key in ("lambda_range", "density_range", "weight_range", "beta_range"):
        lo, hi = config["baselines"][key]
        if lo > hi:
            raise ConfigError(f"{origin}: baselines.{key}: expected [low, high], got {[lo, hi]}")
    stems = [Path(a).stem for a in config["algorithms"]]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"{origin}: algorithms: file names (stems) must be unique, got {stems}")
    if config["world"]["model"]["hidden_size"] % config["world"]["model"]["num_attention_heads"]:
        raise ConfigError(f"{origin}: world.model.num_attention_heads: must divide world.model.hidden_size")
    for rule, own in config["resources"]["rules"].items():
        if "gpu" in own and rule not in GPU_RULES:
            raise ConfigError(f"{origin}: resources.rules.{rule}.gpu: rule {rule} runs no model on a GPU "
                              f"(GPU rules: {', '.join(sorted(GPU_RULES))})")


# Rules that run a model on `device` (their jobs ask for `resources.gpu` GPUs when asks_for_gpus).
GPU_RULES = frozenset({"world_seed", "world_expert", "world_multitask", "world_report", "score_algorithm", "factory_warmup", "sample",
                       "score", "dpo", "final_test", "baseline", "singles", "transfer"})


def rule_resources(config: dict, rule: str, gpu: bool = True, mem_mb: int | None = None) -> dict:
    """A model-loading rule's Snakemake resources: `resources.*`, overridden by `resources.rules.<rule>`;
    `gpu` only for GPU rules, 0 when the device is the CPU (or `gpu` is False: this job runs no model
    on the device, e.g. an imported expert). `mem_mb`: the rule's own default when it holds no model."""
    r = config["resources"]
    own = r["rules"].get(rule, {})
    out = {"mem_mb": own.get("mem_mb", mem_mb or r["mem_mb"]), "runtime": own.get("runtime", r["runtime"])}
    if rule in GPU_RULES:
        out["gpu"] = own.get("gpu", r["gpu"]) if gpu and asks_for_gpus(config["device"]) else 0
    return out


def asks_for_gpus(device: str, host_has_gpu=None) -> bool:
    """Whether GPU rules ask the scheduler for GPUs: `cuda` does, `cpu` does not, and `auto` does when
    the machine that plans the run has an NVIDIA GPU (a cluster's login node usually has none: its jobs
    then ask for none and run on CPU nodes; set `device: cuda` to ask for GPUs there)."""
    if device == "auto":
        return _host_has_gpu() if host_has_gpu is None else host_has_gpu
    return device == "cuda"


def _host_has_gpu() -> bool:
    """An NVIDIA driver's device node: cheap, and no torch import while Snakemake parses the workflow."""
    return Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()


def rule_threads(config: dict, rule: str, default: int) -> int:
    """A rule's threads: `resources.rules.<rule>.threads`, else the rule's own default."""
    return config["resources"]["rules"].get(rule, {}).get("threads", default)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    import yaml

    data: dict = {}
    origin = "config"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
        data = loaded or {}
        origin = str(path)
    if overrides:
        data = _deep_merge(data, overrides)
    return validate_config(data, origin)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def sandbox_limits(config: dict, phase: str = "probe"):
    """The SandboxLimits of the config, with the wall-clock limit of `phase` (probe | merge)."""
    from selfdev.sandbox.run import SandboxLimits

    sb = config["sandbox"]
    return SandboxLimits(
        wall_s=float(sb["probe_wall_s" if phase == "probe" else "merge_wall_s"]),
        cpu_s=int(sb["cpu_s"]),
        memory_mb=int(sb["memory_mb"]),
        file_mb=int(sb["file_mb"]),
        max_norm_ratio=float(sb["max_norm_ratio"]),
        allowed_imports=tuple(sb["allowed_imports"]),
        allow_without_landlock=bool(sb["allow_without_landlock"]),
    )


def expert_skills(world: dict) -> dict[str, list[str]]:
    """Expert name -> skills, in config order."""
    return {e["name"]: list(e.get("skills", [])) for e in world.get("experts", [])}


def expert_names(config: dict) -> list[str]:
    return sorted(expert_skills(config["world"]))


def transfer_skills(world: dict) -> dict[str, list[str]]:
    """Transfer-family expert name -> skills, in config order."""
    return {e["name"]: list(e.get("skills", [])) for e in world.get("transfer_experts", [])}


def family_experts(config: dict, family: str) -> list[str]:
    """The experts of a family: `main` (discovery) or `transfer` (never seen during discovery)."""
    if family == "main":
        return expert_names(config)
    if family == "transfer":
        return sorted(transfer_skills(config["world"]))
    raise ValueError(f"expert family must be 'main' or 'transfer', got {family!r}")
