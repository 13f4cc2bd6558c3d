from pathlib import Path

from selfdev.io import logged
from selfdev.taskvectors import write_task_vector

with logged(snakemake.log[0]):
    print(write_task_vector(Path(snakemake.input.seed).parent, Path(snakemake.input.expert).parent,
                            snakemake.output.task_vector, snakemake.params.include))
