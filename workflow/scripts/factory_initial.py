from pathlib import Path

from selfdev.smk import logged
from selfdev.steps import factory_init

with logged(snakemake.log[0]):
    print(factory_init(snakemake.params.config, str(Path(snakemake.output.model).parent)))
