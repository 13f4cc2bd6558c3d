# Shared names and input functions. Paths come from selfdev.paths so the CLI reads the same files.
from pathlib import Path

from selfdev.algorithms import reference_paths
from selfdev.config import expert_names
from selfdev.paths import Paths

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
# Programs scored directly: the config's `algorithms` files, or the shipped reference set.
ALGORITHMS = (
    {Path(a).stem: a for a in config["algorithms"]}
    if config["algorithms"]
    else {k: str(v) for k, v in reference_paths().items()}
)


wildcard_constraints:
    expert="|".join(EXPERTS),
    algo="|".join(ALGORITHMS) or "NONE",
    it=r"[1-9][0-9]*",


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


def algorithm_file(wildcards):
    return ALGORITHMS[wildcards.algo]


def world_files():
    """What scoring needs from the world: M0, every task vector, the split files."""
    return {
        "seed": PATHS.seed_model(),
        "task_vectors": [PATHS.task_vector(e) for e in EXPERTS],
    }


def initial_factory():
    """The factory iteration 1 samples from: the warmed-up one when the warm-up is on."""
    return PATHS.factory_warmup() if config["factory"]["warmup"]["enabled"] else PATHS.factory_initial()


def previous_factory(wildcards):
    """Iteration i samples from (and DPO starts from) the factory of iteration i-1."""
    it = int(wildcards.it)
    return initial_factory() if it == 1 else PATHS.factory(it - 1)


def earlier_scores(wildcards):
    """Scores of every earlier iteration: for deduplication and the chosen pool."""
    return [PATHS.scores(i) for i in range(1, int(wildcards.it))]


def iteration_files(it):
    return {
        "candidates": PATHS.candidates(it),
        "executable": PATHS.executable(it),
        "scores": PATHS.scores(it),
        "pairs": PATHS.pairs(it),
        "factory": PATHS.factory(it),
    }
