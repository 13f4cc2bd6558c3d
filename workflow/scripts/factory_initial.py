from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import factory_init

with logged(snakemake.log[0]):
    print(factory_init(config=snakemake.params.config, out_dir=str(Path(snakemake.output.model).parent)))
