from selfdev.io import logged, write_json
from selfdev.scoring.programs import check_file

with logged(snakemake.log[0]):
    write_json(check_file(path=snakemake.input.program, config=snakemake.params.config), snakemake.output.verdict)
