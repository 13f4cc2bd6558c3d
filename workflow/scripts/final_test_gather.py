from selfdev.io import logged
from selfdev.study.steps import gather_final_test_step

with logged(snakemake.log[0]):
    print(gather_final_test_step(config=snakemake.params.config, score_paths=list(snakemake.input.scores),
                                 shard_paths=list(snakemake.input.shards), out_path=snakemake.output.test))
