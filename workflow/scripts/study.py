from selfdev.io import logged
from selfdev.study.steps import study_step

with logged(snakemake.log[0]):
    i = snakemake.input
    study_step(config=snakemake.params.config, final_paths=list(i.finals), baseline_paths=list(i.baselines),
               singles_paths=list(i.singles), transfer_path=i.transfer[0] if i.transfer else None,
               runs=snakemake.params.runs, out=dict(snakemake.output.items()),
               executable_paths=list(i.executables))
