from selfdev.api import check_file
from selfdev.io import logged, write_json

with logged(snakemake.log[0]):
    write_json(check_file(snakemake.input.program, snakemake.params.config), snakemake.output.verdict)
