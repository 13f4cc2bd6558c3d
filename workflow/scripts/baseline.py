from pathlib import Path

from selfdev.io import logged
from selfdev.study.steps import baseline_step

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        w = snakemake.wildcards
        print(baseline_step(config=snakemake.params.config, family=w.family, method=w.method, mode=w.mode,
                            seed_dir=str(Path(snakemake.input.seed).parent), task_vectors=list(snakemake.input.task_vectors),
                            dev_path=snakemake.input.dev, test_path=snakemake.input.test, shots_path=snakemake.input.shots,
                            budget_score_paths=snakemake.params.runs, out_path=snakemake.output.record,
                            threads=snakemake.threads))
