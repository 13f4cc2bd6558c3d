from selfdev.smk import logged
from selfdev.steps import summary_step

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    summary_step(f"{w.arm}_s{w.seed}", snakemake.params.iterations, snakemake.input.world_report,
                 snakemake.params.benchmarks, snakemake.output.json, snakemake.output.md)
