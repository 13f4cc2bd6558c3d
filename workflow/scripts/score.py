from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import score_shard_step, score_step

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        w, i = snakemake.wildcards, snakemake.input
        common = dict(config=snakemake.params.config, candidates=i.candidates, executable=i.executable,
                      earlier_scores=list(i.earlier), seed_dir=str(Path(i.seed).parent),
                      task_vectors=list(i.task_vectors), rows=i.rows, shots=i.shots,
                      out_path=snakemake.output.scores, threads=snakemake.threads)
        if "shard" in w.keys():  # eval.shards > 1: one shard of the iteration
            print(score_shard_step(**common, shard=int(w.shard), shards=int(w.shards)))
        else:
            print(score_step(**common))
