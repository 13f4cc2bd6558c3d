from selfdev.smk import logged
from selfdev.steps import pairs_step

with logged(snakemake.log[0]):
    print(pairs_step(snakemake.params.config, int(snakemake.wildcards.it), snakemake.input.scores,
                     list(snakemake.input.earlier), snakemake.output.pairs, int(snakemake.wildcards.seed)))
