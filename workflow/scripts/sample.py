from pathlib import Path

from selfdev.smk import logged
from selfdev.steps import sample

with logged(snakemake.log[0]):
    print(sample(snakemake.params.config, int(snakemake.wildcards.it), str(Path(snakemake.input.factory).parent),
                 snakemake.output.candidates, snakemake.threads))
