from pathlib import Path

from selfdev.io import logged, write_json
from selfdev.params import layer_count
from selfdev.scoring.programs import check_file

with logged(snakemake.log[0]):
    write_json(check_file(path=snakemake.input.program, config=snakemake.params.config,
                          n_layers=layer_count((), Path(snakemake.input.seed).parent)), snakemake.output.verdict)
