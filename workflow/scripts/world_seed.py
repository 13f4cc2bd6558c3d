from pathlib import Path

from selfdev.io import logged
from selfdev.world.build import seed_step

with logged(snakemake.log[0]):
    print(seed_step(config=snakemake.params.config, prompt=snakemake.input.get("prompt"),
                    data=snakemake.input.get("data"),
                    out_dir=Path(snakemake.output.model).parent))
