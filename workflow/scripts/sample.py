from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import sample

# Guarded: a vLLM engine may start its workers with `spawn`, which re-imports this file.
if __name__ == "__main__":
    with logged(snakemake.log[0]):
        w = snakemake.wildcards
        print(sample(config=snakemake.params.config, arm=w.arm, rep=int(w.seed), iteration=int(w.it),
                     factory_dir=str(Path(snakemake.input.factory).parent), out_path=snakemake.output.candidates,
                     threads=snakemake.threads, parent_scores=list(snakemake.input.parents)))
