from pathlib import Path

from selfdev.io import logged
from selfdev.world.build import multitask_step

with logged(snakemake.log[0]):
    print(multitask_step(config={**snakemake.params.config, "threads": snakemake.threads}, prompt=snakemake.input.prompt,
                         data=list(snakemake.input.data), seed_dir=Path(snakemake.input.seed).parent,
                         out_dir=Path(snakemake.output.model).parent))
