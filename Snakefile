# selfdev: Self-Developing (Ishibashi et al., NAACL 2025) as a Snakemake workflow.
# `snakemake --cores all` builds the embedded toy world, scores the reference merging programs and
# runs the Self-Developing loop (factory sampling, filtering, scoring, preference pairs, DPO).
import os

from snakemake.utils import min_version, validate

min_version("8.0")


# The embedded default; `--configfile other.yaml` overrides its keys.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/world.smk"
include: "workflow/rules/algorithms.smk"
include: "workflow/rules/loop.smk"


rule all:
    default_target: True
    input:
        world_report=PATHS.world_report("md"),
        algorithms=PATHS.algorithms_summary("md"),
        summary=PATHS.summary("md"),
        # Intermediate results are targets too, so a deleted one is recomputed (with what follows).
        task_vectors=[PATHS.task_vector(e) for e in EXPERTS],
        scores=[PATHS.score(a) for a in sorted(ALGORITHMS)],
        iterations=[f for it in ITERATIONS for f in iteration_files(it).values()],
