# selfdev: Self-Developing (Ishibashi et al., NAACL 2025) as a Snakemake workflow.
# `snakemake --cores all` builds the embedded toy world, scores the reference merging programs and
# runs the Self-Developing loop (factory sampling, filtering, scoring, preference pairs, DPO) in its
# arms, then the final study: held-out leaderboard, mergekit baselines, transfer, plots, HTML report.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

# The selfdev package is this repository's src/: found from here (and by every job, through PYTHONPATH)
# whether or not it is pip-installed, so conda environments need not install it from a relative path.
_SRC = os.path.join(workflow.basedir, "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
# Optional (not an `envvars:` requirement): an unset PYTHONPATH is normal.
_PYTHONPATH = "PYTHONPATH"
_PATH = os.environ.get(_PYTHONPATH, "")
if _SRC not in _PATH.split(os.pathsep):
    os.environ[_PYTHONPATH] = os.pathsep.join(p for p in (_SRC, _PATH) if p)

from selfdev.config import ConfigError, validate_config

min_version("8.0")


# The embedded default holds no values: every default lives in workflow/schemas/config.schema.yaml.
# `--configfile other.yaml` sets keys.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# The same full validation as the `selfdev` CLI (schema, defaults, cross-key checks), before any job:
# an invalid config fails here with one line naming the key, and nothing runs.
try:
    _validated = validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(_validated)


include: "workflow/rules/common.smk"
include: "workflow/rules/world.smk"
include: "workflow/rules/algorithms.smk"
include: "workflow/rules/loop.smk"
include: "workflow/rules/study.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        # Every intermediate result is a target too (via study_targets), so a deleted one is
        # recomputed with what follows; the HTML report comes last.
        rules.study_targets.input,
        report=PATHS.report_html(),
