# Shared names and input functions. Paths come from selfdev.paths so the CLI reads the same files.
from pathlib import Path

from selfdev.algorithms import reference_paths
from selfdev.config import expert_names, family_experts
from selfdev.paths import Paths, iteration_owner
from selfdev.tuning import searchable

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
ARMS = config["study"]["arms"]
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
    arm="dpo|nodpo",
    family="main|transfer",
    method="|".join(METHODS),
    mode="grid|budget",


def cfg(*keys):
    """The config sections (`section`) or single keys (`section.key`) a rule reads. They are its
    params, so changing any other key (e.g. loop.iterations) does not rerun the rule."""
    out = {}
    for key in keys:
        section, _, sub = key.partition(".")
        if sub:
            out.setdefault(section, {})[sub] = config[section][sub]
        else:
            out[section] = config[section]
    return out


def world_cfg(*keys):
    """A subset of `world`: a rule's params hold only what it reads, so e.g. adding a transfer
    expert retrains neither M0 nor the discovery experts."""
    return {k: config["world"][k] for k in keys}


def expert_cfg(wildcards):
    family = "transfer_experts" if wildcards.expert in TRANSFER else "experts"
    return world_cfg(family, "expert_training")


def algorithm_file(wildcards):
    return ALGORITHMS[wildcards.algo]


def world_files(family="main"):
    """What scoring needs from the world: M0 and every task vector of the expert family."""
    return {
        "seed": PATHS.seed_model(),
        "task_vectors": [PATHS.task_vector(e) for e in family_experts(config, family)],
    }


def initial_factory():
    """The factory iteration 1 samples from: the warmed-up one when the warm-up is on."""
    return PATHS.factory_warmup() if config["factory"]["warmup"]["enabled"] else PATHS.factory_initial()


def previous_factory(wildcards):
    """Iteration i of the dpo arm samples from (and DPO starts from) the factory of iteration i-1;
    the nodpo arm always samples from the initial factory."""
    it = int(wildcards.it)
    if getattr(wildcards, "arm", "dpo") == "nodpo" or it == 1:
        return initial_factory()
    return PATHS.factory("dpo", wildcards.seed, it - 1)


def earlier_scores(wildcards):
    """Scores of every earlier iteration of the same run: for deduplication and the chosen pool."""
    arm = getattr(wildcards, "arm", "dpo")  # pairs and dpo exist for the dpo arm only
    return [PATHS.scores(arm, wildcards.seed, i) for i in range(1, int(wildcards.it))]


def iteration_files(arm, seed, it):
    """One iteration's files; `tag` names its benchmark files (nodpo shares dpo's iteration 1)."""
    files = {
        "candidates": PATHS.candidates(arm, seed, it),
        "executable": PATHS.executable(arm, seed, it),
        "scores": PATHS.scores(arm, seed, it),
    }
    if arm == "dpo":
        files.update(pairs=PATHS.pairs(arm, seed, it), factory=PATHS.factory(arm, seed, it))
    return {**files, "tag": f"{iteration_owner(arm, it)}_s{seed}"}


def loop_files():
    """Every file of every run (arm x seed x iteration)."""
    return [f for arm in ARMS for seed in SEEDS for it in ITERATIONS
            for k, f in iteration_files(arm, seed, it).items() if k != "tag"]


def run_scores(arm, seed):
    return [PATHS.scores(arm, seed, it) for it in ITERATIONS]


def budget_runs(wildcards):
    """The discovery runs (dpo arm, every seed) whose dev evaluations a budget-matched baseline gets."""
    return [run_scores("dpo", s) for s in SEEDS] if wildcards.mode == "budget" else []


def baseline_files():
    modes = ["grid", "budget"] if config["baselines"]["budget_matched"] and "dpo" in ARMS else ["grid"]
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
