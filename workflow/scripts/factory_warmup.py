from pathlib import Path

from selfdev.smk import logged
from selfdev.steps import factory_warmup

with logged(snakemake.log[0]):
    log = factory_warmup(snakemake.params.config, str(Path(snakemake.input.model).parent),
                         str(Path(snakemake.output.model).parent), snakemake.threads)
    print({k: log[k] for k in ("steps", "loss_first", "loss_last", "seconds")})
