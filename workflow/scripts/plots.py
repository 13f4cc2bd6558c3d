from selfdev.io import logged
from selfdev.study.plots import make_plots

with logged(snakemake.log[0]):
    i = snakemake.input
    make_plots(leaderboard_path=i.leaderboard, baselines_path=i.baselines, arms_path=i.arms,
               summary_paths=list(i.summaries), out=dict(snakemake.output.items()))
