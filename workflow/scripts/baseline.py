from pathlib import Path

from selfdev.io import logged
from selfdev.study import baseline_step

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    print(baseline_step(snakemake.params.config, w.family, w.method, w.mode, str(Path(snakemake.input.seed).parent),
                        list(snakemake.input.task_vectors), snakemake.input.dev, snakemake.input.test,
                        snakemake.params.runs, snakemake.output.record, snakemake.threads))
