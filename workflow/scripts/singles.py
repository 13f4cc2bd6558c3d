from pathlib import Path

from selfdev.io import logged
from selfdev.study import singles_step

with logged(snakemake.log[0]):
    print(singles_step(snakemake.params.config, snakemake.wildcards.family, str(Path(snakemake.input.seed).parent),
                       [str(Path(p).parent) for p in snakemake.input.experts], snakemake.input.dev,
                       snakemake.input.test, snakemake.output.record, snakemake.threads))
