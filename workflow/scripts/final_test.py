from pathlib import Path

from selfdev.io import logged
from selfdev.study.steps import final_test_step

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    print(final_test_step(config=snakemake.params.config, arm=w.arm, seed=int(w.seed),
                          score_paths=list(snakemake.input.scores), seed_dir=str(Path(snakemake.input.seed).parent),
                          task_vectors=list(snakemake.input.task_vectors), test_path=snakemake.input.rows, shots_path=snakemake.input.shots,
                          out_path=snakemake.output.test, threads=snakemake.threads))
