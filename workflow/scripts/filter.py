from selfdev.smk import logged
from selfdev.steps import filter_step

with logged(snakemake.log[0]):
    print(filter_step(snakemake.params.config, snakemake.input.candidates, list(snakemake.input.earlier),
                      snakemake.output.executable))
