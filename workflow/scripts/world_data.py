from pathlib import Path

from selfdev.smk import logged
from selfdev.world import build_data

with logged(snakemake.log[0]):
    print(build_data(snakemake.params.world, snakemake.params.seed, Path(snakemake.output.dev).parent))
