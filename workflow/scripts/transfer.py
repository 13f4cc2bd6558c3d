from pathlib import Path

from selfdev.io import logged
from selfdev.study.steps import transfer_step

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        print(transfer_step(config=snakemake.params.config, score_paths=list(snakemake.input.scores),
                            seed_dir=str(Path(snakemake.input.seed).parent), task_vectors=list(snakemake.input.task_vectors),
                            dev_path=snakemake.input.dev, test_path=snakemake.input.test, shots_path=snakemake.input.shots,
                            out_path=snakemake.output.programs, threads=snakemake.threads))
