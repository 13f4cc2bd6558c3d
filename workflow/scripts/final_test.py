from pathlib import Path

from selfdev.io import logged
from selfdev.study import final_test_step

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    print(final_test_step(snakemake.params.config, w.arm, int(w.seed), list(snakemake.input.scores),
                          str(Path(snakemake.input.seed).parent), list(snakemake.input.task_vectors),
                          snakemake.input.rows, snakemake.output.test, snakemake.threads))
