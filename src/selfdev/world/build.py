"""A world: the data merged models are scored on, the seed model M0 and the experts.

M0 is either the embedded toy (a tiny Llama trained from scratch) or an existing checkpoint imported
by `selfdev.world.checkpoints`; each expert is either fine-tuned here from M0 on toy skills or an
existing checkpoint. The data is the toy world's generated problems or a real task (GSM8K, MATH).

Each function is one workflow step with files in and files out; the workflow scripts are thin
adapters around them. Seeds are derived from the config's master seed so a world is reproducible.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Sequence

from selfdev.world import toydata
from selfdev.io import read_jsonl
from selfdev.lm import TinyLlamaSpec, TrainSpec, build_tiny_llama, set_threads, train_causal_lm
from selfdev.scoring.prompts import load_template
from selfdev.seeds import derive_seed

SPLITS = ("seed_train", "dev", "test", "shots")


def split_rows(split: str, *, seed: int, skills: Sequence[str], data: dict) -> list[dict]:
    """One shared split: `seed_train` (M0's curriculum: facts given in the text, known facts, and its wrong
    beliefs about the new entities), `dev` or `test` (recall of the new entities' facts, with names no
    expert trains on; GSM8K format + `skill`). `data` holds the `world.data` sizes the split reads. Dev and
    test questions are all different: no question repeats within a split, and test never asks a dev
    question, so `test` reads `dev_per_skill` as well as `test_per_skill`."""
    skills = list(skills)
    if split == "seed_train":
        return toydata.curriculum(derive_seed(seed, "data", "seed_train"), skills, data["seed_train_per_skill"],
                                  prior_skills=skills, prior_counts=data["prior_counts"])
    if split not in ("dev", "test"):
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    dev = _distinct_draws(seed, "dev", skills, data["dev_per_skill"], exclude=set(), key="world.data.dev_per_skill")
    if split == "dev":
        return dev
    return _distinct_draws(seed, "test", skills, data["test_per_skill"], exclude={r["question"] for r in dev},
                           key="world.data.test_per_skill")


def _distinct_draws(seed: int, split: str, skills: list[str], per_skill: int, *, exclude: set[str],
                    key: str) -> list[dict]:
    """`per_skill` problems of each skill with pairwise different questions, none in `exclude`: seeded
    draws of the toy generator, a question kept the first time it comes (a repeated question would count
    one problem twice in every score and narrow its interval falsely)."""
    available = toydata.distinct_questions()
    if per_skill + len(exclude) // max(len(skills), 1) > available:
        raise ValueError(f"{key} {per_skill}: one skill has only {available} different questions "
                         f"({len(exclude) // max(len(skills), 1)} per skill already used by dev)")
    seen = set(exclude)
    rows: list[dict] = []
    count = dict.fromkeys(skills, 0)
    attempt = 0
    while any(c < per_skill for c in count.values()):
        if attempt == 200:
            raise ValueError(f"{key} {per_skill}: too close to the {available} different questions per skill "
                             "for seeded draws to find them all; choose fewer")
        for r in toydata.make_split(derive_seed(seed, "data", split, attempt), skills, per_skill):
            if r["question"] not in seen and count[r["skill"]] < per_skill:
                seen.add(r["question"])
                count[r["skill"]] += 1
                rows.append(r)
        attempt += 1
    return _balanced(rows, skills, per_skill)


def toy_shots(*, seed: int, skills: Sequence[str], num_shots: int) -> list[dict]:
    """Few-shot examples for the toy task (training names, their own seed), skills in turn."""
    if num_shots == 0:
        return []
    per_skill = -(-num_shots // len(skills))
    return toydata.make_split(derive_seed(seed, "data", "shots"), list(skills), per_skill,
                              names=toydata.TRAIN_NAMES)[:num_shots]


def expert_rows(name: str, *, seed: int, expert_skills: Sequence[str], skills: Sequence[str], per_skill: int,
                replay_fraction: float, prior_counts: Sequence[int]) -> list[dict]:
    """Expert `name`'s training data: the true facts of its own skills' new entities (training names),
    plus `replay_fraction` of M0's curriculum (every skill, with M0's beliefs about the other skills' new
    entities, so that the expert leaves them as M0 has them). Seeded by the expert's name, so adding or
    renaming another expert (of either family) never changes this one. That its skills are in
    `world.skills` is checked by `selfdev.config.validate_config`."""
    own = toydata.make_split(derive_seed(seed, "data", "expert", name), list(expert_skills), per_skill,
                             names=toydata.TRAIN_NAMES)
    n_replay = int(round(len(own) * replay_fraction / (1 - replay_fraction))) if replay_fraction else 0
    replay = []
    if n_replay:
        others = [s for s in skills if s not in expert_skills]
        replay = toydata.curriculum(derive_seed(seed, "data", "replay", name), list(skills),
                                    -(-n_replay // len(skills)), prior_skills=others, prior_counts=prior_counts)
        replay = replay[:n_replay]
    rows = own + replay
    random.Random(derive_seed(seed, "data", "shuffle", name)).shuffle(rows)
    return rows


def _balanced(rows: Sequence[dict], skills: Sequence[str], per_skill: int) -> list[dict]:
    by: dict[str, list[dict]] = {s: [] for s in skills}
    for r in rows:
        if len(by[r["skill"]]) < per_skill:
            by[r["skill"]].append(r)
    return [by[s][i] for i in range(per_skill) for s in skills]


def toy_tokenizer(template):
    """The toy M0's word-level tokenizer: the toy world's words and the prompt template's."""
    from selfdev.world.wordtok import build_word_tokenizer

    return build_word_tokenizer(toydata.vocabulary(), " ".join((template.preamble, template.query, template.target,
                                                                 template.shot_separator)))


def tiny_llama_spec(model: dict) -> TinyLlamaSpec:
    """The toy model's size from the validated `world.model` section (heads dividing the hidden size
    is checked by `selfdev.config.validate_config`)."""
    return TinyLlamaSpec(model["hidden_size"], model["intermediate_size"], model["num_hidden_layers"],
                         model["num_attention_heads"])


def train_spec(training: dict, seed: int, warmup_steps: int) -> TrainSpec:
    """A TrainSpec from a validated `world.seed_training` / `world.expert_training` section."""
    # M0 trains every parameter with AdamW; `optimizer` and `trainable` are expert-only keys.
    return TrainSpec(training["steps"], training["lr"], training["batch_size"], seed,
                     training.get("optimizer", "adamw"), tuple(training.get("trainable", ())), warmup_steps=warmup_steps)


def _save(model, tokenizer, out_dir: Path, log: dict) -> None:
    from selfdev.io import atomic_dir, write_json

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(log, tmp / "train_log.json")


def _trained_toy_seed(*, model: dict, training: dict, template, rows: Sequence[dict], init_seed: int,
                      train_seed: int, device: str) -> tuple:
    """A tiny Llama built from `init_seed` and trained on `rows` with `training` (seeded by `train_seed`):
    the model (back on the CPU), its tokenizer, the losses and the training seconds."""
    tok = toy_tokenizer(template)
    lm = build_tiny_llama(tiny_llama_spec(model), tok, init_seed).to(device)
    spec = train_spec(training, train_seed, warmup_steps=20)
    t0 = time.perf_counter()
    losses = train_causal_lm(lm, tok, template, rows, spec)
    return lm.to("cpu"), tok, losses, time.perf_counter() - t0


def train_seed(*, seed: int, model: dict, training: dict, prompt: str | Path, data: str | Path,
               out_dir: str | Path, threads: int, device: str = "cpu") -> dict:
    """M0: a tiny Llama trained from scratch on the curriculum of every skill."""
    set_threads(threads)
    lm, tok, losses, seconds = _trained_toy_seed(
        model=model, training=training, template=load_template(prompt), rows=read_jsonl(data),
        init_seed=derive_seed(seed, "init", "seed"), train_seed=derive_seed(seed, "train", "seed"), device=device)
    log = {"role": "seed", "steps": training["steps"], "device": device, "loss_first": losses[0],
           "loss_last": losses[-1], "seconds": seconds}
    _save(lm, tok, Path(out_dir), log)
    return log


def train_expert(*, name: str, skills: Sequence[str], seed: int, training: dict, prompt: str | Path,
                 data: str | Path | Sequence[str | Path], seed_dir: str | Path, out_dir: str | Path, threads: int,
                 device: str = "cpu") -> dict:
    """Expert `name`: M0 fine-tuned on its skills' full ranges (plus replay of M0's curriculum), in the
    prompt format it is scored with (the model's chat template when the prompt asks for one). Several
    data files (the multi-task model) are joined and shuffled with a seed named after `name`."""
    from selfdev.lm import load_causal_lm

    set_threads(threads)
    tpl = load_template(prompt)
    model, tok = load_causal_lm(seed_dir, "float32", device)
    if isinstance(data, (str, Path)):
        rows = read_jsonl(data)
    else:
        rows = [r for path in data for r in read_jsonl(path)]
        random.Random(derive_seed(seed, "data", "shuffle", name)).shuffle(rows)
    spec = train_spec(training, derive_seed(seed, "train", "expert", name), warmup_steps=10)
    t0 = time.perf_counter()
    losses = train_causal_lm(model, tok, tpl, rows, spec)
    model.to("cpu")
    log = {"role": "expert", "name": name, "skills": list(skills), "steps": spec.steps, "device": device,
           "loss_first": losses[0], "loss_last": losses[-1], "seconds": time.perf_counter() - t0}
    _save(model, tok, Path(out_dir), log)
    return log


def seed_weights_digest(*, steps: int, prompt: str | Path, config: dict | None = None) -> dict:
    """The default toy M0 (or `config`'s) trained for `steps` steps at its configured threads, from master
    seed 0, and the first 16 hex digits of a sha256 over its weights: two machines that print the same
    digest compute the same worlds. Called by tests/test_world_and_scoring.py and
    benchmarks/cpu_pinning.py in a fresh process, so that the numerics settings of `selfdev` apply."""
    import hashlib

    from selfdev.config import validate_config

    w = validate_config(config or {})["world"]
    set_threads(w["seed_training"]["threads"])
    rows = split_rows("seed_train", seed=0, skills=w["skills"], data=w["data"])
    model, _, losses, seconds = _trained_toy_seed(
        model=w["model"], training={**w["seed_training"], "steps": steps}, template=load_template(prompt), rows=rows,
        init_seed=1, train_seed=2, device="cpu")
    digest = hashlib.sha256(b"".join(q.detach().numpy().tobytes() for q in model.parameters())).hexdigest()[:16]
    return {"weights": digest, "seconds": seconds, "per_step_ms": 1000 * seconds / steps, "loss_last": losses[-1]}


# --- workflow steps: a rule's config subset and files in, files out -----------------------------------
def write_split(*, split: str, config: dict, out: str | Path, prompt: str | Path | None = None) -> dict:
    """Rule `world_split`: config holds `seed`, `eval.task` and what the split reads (see split_cfg):
    `world.skills` / `world.data` for toy data, `eval.source` and sizes for a real task. The `shots`
    split reads the prompt's `num_shots`."""
    from selfdev.io import write_jsonl
    from selfdev.scoring.tasks import task_split

    num_shots = load_template(prompt).num_shots if split == "shots" else 0
    ev = config["eval"]
    if split == "seed_train" or ev["task"] == "toy":
        w = config["world"]
        rows = (toy_shots(seed=config["seed"], skills=w["skills"], num_shots=num_shots) if split == "shots"
                else split_rows(split, seed=config["seed"], skills=w["skills"], data=w["data"]))
    else:
        rows = task_split(ev["task"], ev["source"], split, seed=config["seed"], dev_size=ev.get("dev_size", 0),
                          test_size=ev.get("test_size"), num_shots=num_shots)
    write_jsonl(rows, out)
    return {"split": split, "rows": len(rows)}


def write_expert_data(*, name: str, config: dict, out: str | Path) -> dict:
    """Rule `expert_data`: config holds `seed`, `world.skills`, the expert's skills and `world.data`."""
    from selfdev.io import write_jsonl

    w = config["world"]
    rows = expert_rows(name, seed=config["seed"], expert_skills=config["expert"]["skills"], skills=w["skills"],
                       per_skill=w["data"]["expert_train_per_skill"], replay_fraction=w["data"]["replay_fraction"],
                       prior_counts=w["data"]["prior_counts"])
    write_jsonl(rows, out)
    return {"expert": name, "rows": len(rows)}


def multitask_step(*, config: dict, prompt: str | Path, data: Sequence[str | Path], seed_dir: str | Path,
                   out_dir: str | Path) -> dict:
    """Rule `world_multitask`: M0 fine-tuned on every expert's data at once, with the experts' recipe
    for steps x number of experts (config holds `seed`, `threads`, `device`, `world.expert_training`
    and `world.experts`)."""
    from selfdev.device import resolve_device

    w = config["world"]
    training = {**w["expert_training"], "steps": w["expert_training"]["steps"] * len(data)}
    skills = sorted({s for e in w["experts"] for s in e["skills"]})
    return train_expert(name="multitask", skills=skills, seed=config["seed"], training=training, prompt=prompt,
                        data=list(data), seed_dir=seed_dir, out_dir=out_dir, threads=config["threads"],
                        device=resolve_device(config["device"]))


def seed_step(*, config: dict, prompt: str | Path | None, data: str | Path | None, out_dir: str | Path) -> dict:
    """Rule `world_seed`: the toy M0 trained (torch threads from the config, not the scheduler, so the
    arithmetic, and so M0, is the same however many cores a run was given), or an existing checkpoint
    imported (config holds `world.seed_model` and `world.dtype`)."""
    from selfdev.device import resolve_device
    from selfdev.world.checkpoints import import_checkpoint

    w = config["world"]
    if w["seed_model"] != "toy":
        return import_checkpoint(w["seed_model"], out_dir, dtype=w["dtype"], what="world.seed_model")
    return train_seed(seed=config["seed"], model=w["model"], training=w["seed_training"], prompt=prompt, data=data,
                      out_dir=out_dir, threads=w["seed_training"]["threads"], device=resolve_device(config["device"]))


def expert_step(*, name: str, config: dict, prompt: str | Path | None, data: str | Path | None,
                seed_dir: str | Path, out_dir: str | Path, family: str = "experts") -> dict:
    """Rule `world_expert`: an existing checkpoint imported (config holds the expert and `world.dtype`),
    or M0 fine-tuned on the expert's skills (config holds `seed`, `threads`, `device`, the expert and
    `world.expert_training`)."""
    from selfdev.device import resolve_device
    from selfdev.world.checkpoints import import_checkpoint

    expert = config["expert"]
    if "model" in expert:
        return import_checkpoint(expert["model"], out_dir, dtype=config["world"]["dtype"],
                                 what=f"world.{family}.{name}")
    return train_expert(name=name, skills=expert["skills"], seed=config["seed"],
                        training=config["world"]["expert_training"], prompt=prompt, data=data, seed_dir=seed_dir,
                        out_dir=out_dir, threads=config["threads"], device=resolve_device(config["device"]))
