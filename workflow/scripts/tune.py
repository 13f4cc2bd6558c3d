from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import tune_step

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        i = snakemake.input
        print(tune_step(config=snakemake.params.config, score_paths=list(i.scores), seed_dir=str(Path(i.seed).parent),
                        task_vectors=list(i.task_vectors), rows=i.rows, shots=i.shots,
                        out_path=snakemake.output.tuned, threads=snakemake.threads))
