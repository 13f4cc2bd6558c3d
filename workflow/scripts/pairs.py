from selfdev.io import logged
from selfdev.loop.steps import pairs_step

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    print(pairs_step(config=snakemake.params.config, rep=int(w.seed), iteration=int(w.it),
                     scores=snakemake.input.scores, earlier_scores=list(snakemake.input.earlier),
                     out_path=snakemake.output.pairs))
