from selfdev.io import logged
from selfdev.study import study_step

with logged(snakemake.log[0]):
    i = snakemake.input
    study_step(snakemake.params.config, list(i.finals), list(i.baselines), list(i.singles),
               i.transfer[0] if i.transfer else None, snakemake.params.runs, dict(snakemake.output.items()))
