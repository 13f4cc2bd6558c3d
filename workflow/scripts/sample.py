from pathlib import Path

from selfdev.smk import logged
from selfdev.steps import sample

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    print(sample(snakemake.params.config, int(w.it), str(Path(snakemake.input.factory).parent),
                 snakemake.output.candidates, snakemake.threads, w.arm, int(w.seed)))
