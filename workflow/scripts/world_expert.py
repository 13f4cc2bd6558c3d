from pathlib import Path

from selfdev.io import logged
from selfdev.world.build import expert_step

with logged(snakemake.log[0]):
    print(expert_step(name=snakemake.wildcards.expert, config=snakemake.params.config, prompt=snakemake.input.get("prompt"),
                      data=snakemake.input.get("data"), family=snakemake.params.family, 
                      seed_dir=Path(snakemake.input.seed).parent if "seed" in snakemake.input.keys() else None,
                      out_dir=Path(snakemake.output.model).parent))
