from pathlib import Path

from selfdev.io import logged
from selfdev.world.build import expert_step

with logged(snakemake.log[0]):
    print(expert_step(name=snakemake.wildcards.expert, config=snakemake.params.config, prompt=snakemake.input.prompt,
                      data=snakemake.input.data, seed_dir=Path(snakemake.input.seed).parent,
                      out_dir=Path(snakemake.output.model).parent))
