from pathlib import Path

from selfdev.smk import logged
from selfdev.steps import dpo_step

with logged(snakemake.log[0]):
    log = dpo_step(snakemake.params.config, str(Path(snakemake.input.factory).parent), snakemake.input.pairs,
                   str(Path(snakemake.output.model).parent), snakemake.threads, int(snakemake.wildcards.seed))
    print({k: log.get(k) for k in ("pairs", "loss_first", "loss_last", "seconds", "skipped")})
