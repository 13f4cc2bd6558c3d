from pathlib import Path

from selfdev.smk import logged
from selfdev.world import train_seed

with logged(snakemake.log[0]):
    print(train_seed(snakemake.params.world, snakemake.params.seed, snakemake.input.prompt,
                     Path(snakemake.input.data).parent, Path(snakemake.output.model).parent, snakemake.threads))
