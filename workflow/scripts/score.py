from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import score_step

with logged(snakemake.log[0]):
    print(score_step(config=snakemake.params.config, candidates=snakemake.input.candidates,
                     executable=snakemake.input.executable, earlier_scores=list(snakemake.input.earlier),
                     seed_dir=str(Path(snakemake.input.seed).parent), task_vectors=list(snakemake.input.task_vectors),
                     rows=snakemake.input.rows, shots=snakemake.input.shots, out_path=snakemake.output.scores))
