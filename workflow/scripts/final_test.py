from pathlib import Path

from selfdev.io import logged
from selfdev.study.steps import final_test_step

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        w = snakemake.wildcards
        # eval.shards > 1: this job scores one shard of the ranks (final_test_gather joins them).
        shard = {"shard": int(w.shard), "shards": int(w.shards)} if "shard" in w.keys() else {}
        print(final_test_step(config=snakemake.params.config, arm=w.arm, seed=int(w.seed),
                              score_paths=list(snakemake.input.scores), seed_dir=str(Path(snakemake.input.seed).parent),
                              task_vectors=list(snakemake.input.task_vectors), test_path=snakemake.input.rows,
                              shots_path=snakemake.input.shots, out_path=snakemake.output.test, threads=snakemake.threads,
                              **shard))
