from pathlib import Path

from selfdev.io import logged
from selfdev.world.report import write_world_report

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        write_world_report(config={**snakemake.params.config, "threads": snakemake.threads},
                           seed_dir=Path(snakemake.input.seed).parent,
                           expert_dirs=[Path(p).parent for p in snakemake.input.experts],
                           multitask_dir=Path(snakemake.input.multitask[0]).parent if snakemake.input.multitask else None,
                           task_vectors=snakemake.input.task_vectors, dev=snakemake.input.dev, shots=snakemake.input.shots,
                           out_json=snakemake.output.json, out_md=snakemake.output.md)
