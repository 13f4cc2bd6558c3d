from pathlib import Path

from selfdev.io import logged
from selfdev.world.report import write_world_report

with logged(snakemake.log[0]):
    write_world_report(config=snakemake.params.config, seed_dir=Path(snakemake.input.seed).parent,
                       expert_dirs=[Path(p).parent for p in snakemake.input.experts],
                       task_vectors=snakemake.input.task_vectors, dev=snakemake.input.dev, shots=snakemake.input.shots,
                       out_json=snakemake.output.json, out_md=snakemake.output.md)
