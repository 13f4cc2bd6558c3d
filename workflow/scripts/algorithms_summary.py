from selfdev.io import logged
from selfdev.study.report import write_algorithms_summary

with logged(snakemake.log[0]):
    write_algorithms_summary(score_paths=snakemake.input.scores, world_report_path=snakemake.input.world_report,
                             out_json=snakemake.output.json, out_md=snakemake.output.md)
