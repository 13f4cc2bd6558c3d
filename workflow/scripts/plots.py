from selfdev.plots import make_plots
from selfdev.io import logged

with logged(snakemake.log[0]):
    i = snakemake.input
    make_plots(i.leaderboard, i.baselines, i.arms, list(i.summaries), dict(snakemake.output.items()))
