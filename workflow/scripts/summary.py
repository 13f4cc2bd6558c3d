from selfdev.io import logged
from selfdev.loop.steps import summary_step

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    summary_step(run=f"{w.arm}_s{w.seed}", iterations=snakemake.params.iterations,
                 world_report=snakemake.input.world_report, out_json=snakemake.output.json,
                 out_md=snakemake.output.md)
