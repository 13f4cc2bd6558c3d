from pathlib import Path

from selfdev.smk import logged
from selfdev.world import train_expert

with logged(snakemake.log[0]):
    print(train_expert(snakemake.params.world, snakemake.wildcards.expert, snakemake.params.seed, snakemake.input.prompt,
                       Path(snakemake.input.data).parent, Path(snakemake.input.seed).parent,
                       Path(snakemake.output.model).parent, snakemake.threads))
