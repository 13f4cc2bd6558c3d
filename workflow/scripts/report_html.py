from selfdev.io import logged
from selfdev.study.report import build_html_report

with logged(snakemake.log[0]):
    build_html_report(snakefile=snakemake.params.snakefile, config=snakemake.params.config,
                      config_out=snakemake.output.config, html_out=snakemake.output.html, target="study_targets")
