from pathlib import Path

from selfdev.smk import logged
from selfdev.world import write_world_report

with logged(snakemake.log[0]):
    write_world_report(snakemake.params.config, Path(snakemake.input.seed).parent,
                       [Path(p).parent for p in snakemake.input.experts], snakemake.input.task_vectors,
                       Path(snakemake.input.dev).parent, snakemake.params.benchmarks,
                       snakemake.output.json, snakemake.output.md)
