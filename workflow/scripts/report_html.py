from selfdev.report import build_html_report
from selfdev.io import logged

with logged(snakemake.log[0]):
    build_html_report(snakemake.params.snakefile, snakemake.params.config, snakemake.output.config,
                      snakemake.output.html, target="study_targets")
