from selfdev.io import logged
from selfdev.loop.steps import gather_scores_step

with logged(snakemake.log[0]):
    i = snakemake.input
    print(gather_scores_step(candidates=i.candidates, executable=i.executable, earlier_scores=list(i.earlier),
                             shard_paths=list(i.shards), out_path=snakemake.output.scores))
