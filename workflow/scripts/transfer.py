from pathlib import Path

from selfdev.io import logged
from selfdev.study import transfer_step

with logged(snakemake.log[0]):
    print(transfer_step(snakemake.params.config, list(snakemake.input.scores), str(Path(snakemake.input.seed).parent),
                        list(snakemake.input.task_vectors), snakemake.input.dev, snakemake.input.test,
                        snakemake.output.programs, snakemake.threads))
