from pathlib import Path

from selfdev.io import logged, read_json, write_json
from selfdev.scoring.programs import score_file

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        record = score_file(path=snakemake.input.program, config=snakemake.params.config, split=snakemake.params.split,
                            seed_dir=str(Path(snakemake.input.seed).parent), task_vectors=snakemake.input.task_vectors,
                            rows_path=snakemake.input.rows, shots_path=snakemake.input.shots,
                            verdict=read_json(snakemake.input.verdict), threads=snakemake.threads)
        write_json(record, snakemake.output.score)
