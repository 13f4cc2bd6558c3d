from pathlib import Path

from selfdev.io import logged
from selfdev.world.taskvectors import write_task_vector

with logged(snakemake.log[0]):
    print(write_task_vector(seed_dir=Path(snakemake.input.seed).parent, expert_dir=Path(snakemake.input.expert).parent,
                            out=snakemake.output.task_vector, include=snakemake.params.config["merge"]["include"],
                            dtype=snakemake.params.config["merge"]["dtype"], expert=snakemake.wildcards.expert))
