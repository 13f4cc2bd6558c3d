from pathlib import Path

from selfdev.smk import logged
from selfdev.steps import score_step

with logged(snakemake.log[0]):
    print(score_step(snakemake.params.config, snakemake.input.candidates, snakemake.input.executable,
                     list(snakemake.input.earlier), str(Path(snakemake.input.seed).parent),
                     list(snakemake.input.task_vectors), snakemake.input.rows, snakemake.output.scores,
                     snakemake.threads))
