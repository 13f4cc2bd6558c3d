# Shared names and input functions. Paths come from selfdev.paths so the CLI reads the same files.
from pathlib import Path

from selfdev.algorithms import reference_paths
from selfdev.loop.evolve import EVOLVE_ARMS
from selfdev.config import expert_names, family_experts, rule_resources, rule_threads
from selfdev.paths import DPO_ARMS, Paths
from selfdev.study.baselines import searchable

PATHS = Paths(config["results"])


def repo_relative(path):
    """A path as given if it exists from the working directory, else relative to the repository
    (so `snakemake -d elsewhere` still finds the shipped prompt files)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(workflow.basedir, path)


config["eval"]["prompt"] = repo_relative(config["eval"]["prompt"])
config["factory"]["prompt"] = repo_relative(config["factory"]["prompt"])
ITERATIONS = list(range(1, config["loop"]["iterations"] + 1))
EXPERTS = expert_names(config)
TRANSFER = family_experts(config, "transfer")
FAMILIES = ["main", "transfer"] if TRANSFER else ["main"]
# The multi-task upper bound needs every expert's training data, so only experts trained here.
MULTITASK = config["world"]["multitask"] and all("skills" in e for e in config["world"]["experts"])
ARMS = config["study"]["arms"]
# The arm whose runs set the budget of the budget-matched baselines and whose top programs go to the
# transfer study.
MAIN_ARM = "dpo" if "dpo" in ARMS else ARMS[0]
SEEDS = list(range(config["study"]["seeds"]))
METHODS = config["baselines"]["methods"]
# Programs scored directly: the config's `algorithms` files, or the shipped reference set.
ALGORITHMS = (
    {Path(a).stem: a for a in config["algorithms"]}
    if config["algorithms"]
    else {k: str(v) for k, v in reference_paths().items()}
)


wildcard_constraints:
    expert="|".join(EXPERTS + TRANSFER),
    algo="|".join(ALGORITHMS) or "NONE",
    it=r"[1-9][0-9]*",
    seed=r"[0-9]+",
    arm="dpo|nodpo|evolve|evolve_dpo",
    family="main|transfer",
    method="|".join(METHODS),
    mode="grid|budget",
    split="seed_train|dev|test|shots",
    shard=r"[0-9]+",
    shards=r"[0-9]+",


def canonical(value):
    """`value` with every mapping's keys sorted: Snakemake compares params by repr, so key order in a
    config file must not count as a change."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def cfg(*keys):
    """The config values a rule reads, by dotted path (`seed`, `world.model`, `loop.t1`), nested as in
    the config and with sorted keys. They are its params, so changing any other key (e.g.
    loop.iterations) does not rerun the rule, and reordering keys reruns nothing."""
    out = {}
    for key in keys:
        *parents, last = key.split(".")
        src, dst = config, out
        for part in parents:
            src, dst = src[part], dst.setdefault(part, {})
        dst[last] = src[last]
    return canonical(out)


def engine_cfg(*keys):
    """`cfg` for what generates text; the engine keys count only when they can change what is
    computed. `eval.shards` never does (sharded scoring writes the same table), and the default
    transformers engine adds no key, so results computed before engines were a choice stay valid;
    choosing vllm (or changing its options) reruns what it generates."""
    out = cfg(*keys)
    if out.get("factory", {}).get("prompt_format") == "completion":
        out["factory"].pop("prompt_format")  # the default, like the default engine, adds no key
        if not out["factory"]:
            out.pop("factory")
    for section in ("eval", "factory"):
        sec = out.get(section)
        if not sec or "engine" not in sec:
            continue
        sec.pop("shards", None)
        if sec["engine"] == "transformers":
            sec.pop("engine")
            sec.pop("vllm", None)
    return out


TOY_SEED = config["world"]["seed_model"] == "toy"
TOY_TASK = config["eval"]["task"] == "toy"
SHARDS = config["eval"]["shards"]
# Conda environments (`--sdm conda`), relative to workflow/rules/: rules that generate with vLLM get
# their own (vLLM pins torch and transformers).
ENV = "../envs/selfdev.yaml"
SCORE_ENV = "../envs/vllm.yaml" if config["eval"]["engine"] == "vllm" else ENV
SAMPLE_ENV = "../envs/vllm.yaml" if config["factory"]["engine"] == "vllm" else ENV


def split_cfg(wildcards):
    """A shared split's settings. Toy data: M0's curriculum size, or the dev size (test avoids dev
    questions). A real task: its source and the sizes (shots come after dev in the same draw)."""
    if TOY_TASK or wildcards.split == "seed_train":
        sizes = {"seed_train": ["seed_train_per_skill", "prior_counts"], "dev": ["dev_per_skill"], "shots": [],
                 "test": ["dev_per_skill", "test_per_skill"]}[wildcards.split]
        return cfg("seed", "eval.task", "world.skills", *(f"world.data.{k}" for k in sizes))
    sizes = {"dev": ["eval.dev_size"], "shots": ["eval.dev_size"], "test": ["eval.test_size"]}[wildcards.split]
    return cfg("seed", "eval.task", "eval.source", *sizes)


def local_folder(source):
    """A model or dataset source as a declared input when it is a local folder (replacing it reruns
    what reads it); nothing for a hub id, which parsing never resolves (no download at DAG time)."""
    path = os.path.expanduser(source)
    return [path] if source and os.path.isdir(path) else []


def split_inputs(wildcards):
    """The prompt (for its num_shots) of the shots split, and a real task's local data folder."""
    files = {"prompt": config["eval"]["prompt"]} if wildcards.split == "shots" else {}
    if not TOY_TASK and wildcards.split != "seed_train":
        files["source"] = local_folder(config["eval"]["source"])
    return files


def seed_inputs(wildcards):
    """The toy M0's curriculum and prompt, or the local folder of an imported M0."""
    if TOY_SEED:
        return {"data": PATHS.data("seed_train"), "prompt": config["eval"]["prompt"]}
    return {"source": local_folder(config["world"]["seed_model"])}


def seed_cfg(wildcards):
    if TOY_SEED:
        return cfg("seed", "device", "world.seed_model", "world.model", "world.seed_training")
    return cfg("world.seed_model", "world.dtype")


def expert_entry(name):
    """An expert's own config entry (`name`, `skills`), from either family."""
    return next(e for e in config["world"]["experts"] + config["world"]["transfer_experts"] if e["name"] == name)


def expert_data_cfg(wildcards):
    """Only this expert's entry and the sizes it reads: adding another expert changes nothing here."""
    return canonical({**cfg("seed", "world.skills", "world.data.expert_train_per_skill", "world.data.replay_fraction",
                            "world.data.prior_counts"),
                      "expert": expert_entry(wildcards.expert)})


def expert_cfg(wildcards):
    entry = expert_entry(wildcards.expert)
    if "model" in entry:
        return canonical({**cfg("world.dtype"), "expert": entry})
    return canonical({**cfg("seed", "threads", "device", "world.expert_training"), "expert": entry})


def expert_inputs(wildcards):
    """A fine-tuned expert's data, M0 and prompt; an imported expert's local folder (its match with M0
    is checked by the task vector)."""
    entry = expert_entry(wildcards.expert)
    if "model" in entry:
        return {"source": local_folder(entry["model"])}
    return {"data": PATHS.data(f"expert_{wildcards.expert}"), "seed": PATHS.seed_model(),
            "prompt": config["eval"]["prompt"]}


def expert_family(wildcards):
    return "experts" if wildcards.expert in EXPERTS else "transfer_experts"


def algorithm_file(wildcards):
    return ALGORITHMS[wildcards.algo]


def world_files(family="main"):
    """What scoring needs from the world: M0 and every task vector of the expert family."""
    return {
        "seed": PATHS.seed_model(),
        "task_vectors": [PATHS.task_vector(e) for e in family_experts(config, family)],
        "shots": PATHS.data("shots"),
    }


def factory_source(wildcards):
    """The initial factory's folder when `factory.model` is a local folder (a declared input, so replacing
    it reruns the conversion); nothing for a hub id or the packaged GGUF."""
    return local_folder(config["factory"]["model"])


def initial_factory():
    """The factory iteration 1 samples from: the warmed-up one when the warm-up is on."""
    return PATHS.factory_warmup() if config["factory"]["warmup"]["enabled"] else PATHS.factory_initial()


def previous_factory(wildcards):
    """Iteration i of a DPO arm (dpo, evolve_dpo) samples from (and DPO starts from) the factory of
    iteration i-1 (iteration 1's is dpo's); nodpo and evolve always sample from the initial factory."""
    it = int(wildcards.it)
    if wildcards.arm not in DPO_ARMS or it == 1:
        return initial_factory()
    return PATHS.factory(wildcards.arm, wildcards.seed, it - 1)


def earlier_scores(wildcards):
    """Scores of every earlier iteration of the same run: for deduplication and the chosen pool."""
    return [PATHS.scores(wildcards.arm, wildcards.seed, i) for i in range(1, int(wildcards.it))]


def parent_scores(wildcards):
    """An evolve arm's archive (the run's earlier scores) that its prompts draw parents from."""
    return earlier_scores(wildcards) if wildcards.arm in EVOLVE_ARMS else []


def sample_cfg(wildcards):
    """The sampling rule's params: evolve arms also read `evolve` (changing it reruns only them)."""
    keys = ["seed", "threads", "device", "factory.prompt", "factory.prompt_format", "factory.dtype", "factory.engine", "factory.vllm",
            "loop.n_samples", "loop.t1", "loop.beta", "loop.top_p", "loop.max_new_tokens", "loop.batch_size"]
    if wildcards.arm in EVOLVE_ARMS and int(wildcards.it) > 1:
        keys.append("evolve")
    return engine_cfg(*keys)


def iteration_files(arm, seed, it):
    """One iteration's files (every arm shares dpo's iteration 1)."""
    files = {
        "candidates": PATHS.candidates(arm, seed, it),
        "executable": PATHS.executable(arm, seed, it),
        "scores": PATHS.scores(arm, seed, it),
    }
    if arm in DPO_ARMS:
        files["pairs"] = PATHS.pairs(arm, seed, it)
        if it < ITERATIONS[-1] or config["loop"]["final_dpo"]:
            factory = PATHS.factory(arm, seed, it)
            files.update(factory=factory, train_log=PATHS.train_log(factory))
    return files


def loop_files():
    """Every file of every run (arm x seed x iteration)."""
    return [f for arm in ARMS for seed in SEEDS for it in ITERATIONS for f in iteration_files(arm, seed, it).values()]


def score_shards(wildcards):
    """The shards an iteration's `score` gathers (eval.shards > 1); none when it scores itself."""
    if SHARDS == 1:
        return []
    return [PATHS.score_shard(wildcards.arm, wildcards.seed, wildcards.it, k, SHARDS) for k in range(SHARDS)]


def final_test_shards(wildcards):
    if SHARDS == 1:
        return []
    return [PATHS.final_test_shard(wildcards.arm, wildcards.seed, k, SHARDS) for k in range(SHARDS)]


def run_scores(arm, seed):
    return [PATHS.scores(arm, seed, it) for it in ITERATIONS]


def selected_scores(arm, seed):
    """What a run's final programs are chosen from: its iterations' scores and, with loop.tune, its best
    programs with their scale tuned on dev."""
    return run_scores(arm, seed) + ([PATHS.tuned(arm, seed)] if config["loop"]["tune"]["programs"] else [])


def budget_runs(wildcards):
    """The discovery runs (main arm, every seed) whose dev evaluations a budget-matched baseline gets
    (tuning the scales included)."""
    return [selected_scores(MAIN_ARM, s) for s in SEEDS] if wildcards.mode == "budget" else []


def baseline_files():
    modes = ["grid", "budget"] if config["baselines"]["budget_matched"] else ["grid"]
    # A method without hyper-parameters (Model Stock) has one configuration: no search to budget.
    main = [PATHS.baseline("main", m, mode) for m in METHODS for mode in modes if mode == "grid" or searchable(m)]
    return main + [PATHS.baseline("transfer", m, "grid") for m in METHODS if TRANSFER]


PLOTS = ["dev_distribution", "executable_rate", "best_so_far", "test_accuracy"]


def study_outputs():
    """Every study table (the `study` rule's outputs) by name."""
    return {
        "leaderboard": PATHS.final("leaderboard.parquet"),
        "leaderboard_md": PATHS.final("leaderboard.md"),
        "baselines": PATHS.final("baselines.parquet"),
        "baselines_md": PATHS.final("baselines.md"),
        "transfer": PATHS.final("transfer.parquet"),
        "transfer_md": PATHS.final("transfer.md"),
        "arms": PATHS.final("arms.json"),
        "arms_md": PATHS.final("arms.md"),
        "json": PATHS.summary("json"),
        "md": PATHS.summary("md"),
        "html": PATHS.final("study.html"),
    }
