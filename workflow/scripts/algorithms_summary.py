from selfdev.report import write_algorithms_summary
from selfdev.io import logged

with logged(snakemake.log[0]):
    write_algorithms_summary(snakemake.input.scores, snakemake.input.world_report,
                             snakemake.output.json, snakemake.output.md)
