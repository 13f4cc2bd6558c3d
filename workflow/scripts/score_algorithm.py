from pathlib import Path

from selfdev.api import score_file
from selfdev.io import logged, read_json, write_json

with logged(snakemake.log[0]):
    record = score_file(snakemake.input.program, snakemake.params.config, snakemake.params.split,
                        str(Path(snakemake.input.seed).parent), snakemake.input.task_vectors, snakemake.input.rows,
                        verdict=read_json(snakemake.input.verdict))
    write_json(record, snakemake.output.score)
