import pytest

from selfdev.world.build import toydata
from selfdev.scoring.answer import reference_answer
from selfdev.config import ConfigError, load_config, load_schema, validate_config
from conftest import REPO


def test_default_config_file_validates_and_fills_defaults():
    cfg = load_config(REPO / "config" / "config.yaml")
    assert cfg == validate_config({})  # the file sets nothing: every default is the schema's
    assert cfg["sandbox"]["allowed_imports"] == ["torch", "math", "numpy", "functools", "itertools", "typing"]
    assert validate_config({})["world"]["model"]["hidden_size"] > 0


def _walk(schema, path="config"):
    if schema.get("type") == "object":
        for key, sub in schema.get("properties", {}).items():
            yield f"{path}.{key}", sub
            yield from _walk(sub, f"{path}.{key}")


def test_every_schema_key_has_description_and_default():
    missing = [p for p, sub in _walk(load_schema()) if "description" not in sub or "default" not in sub]
    assert missing == []


BAD_CONFIGS = [
    ({"world": {"data": {"dev_per_skill": "x"}}}, "world.data.dev_per_skill"),
    ({"world": {"experts": [{"name": "only", "skills": ["add"]}]}}, "world.experts"),
    ({"world": {"experts": [{"name": "a", "skills": ["add"]}, {"name": "a", "skills": ["mul"]}]}}, "world.experts"),
    ({"world": {"experts": [{"name": "a b", "skills": ["add"]}, {"name": "c", "skills": ["pow"]}]}}, "world.experts.0.name"),
    ({"sandbox": {"wall": 3}}, "sandbox"),
    ({"eval": {"dtype": "int8"}}, "eval.dtype"),
    ({"world": {"transfer_experts": [{"name": "add", "skills": ["add"]}, {"name": "t", "skills": ["mul"]}]}},
     "world.transfer_experts"),
    ({"world": {"transfer_experts": [{"name": "t", "skills": ["add"]}]}}, "world.transfer_experts"),
    ({"world": {"skills": ["add", "mul"]}}, "world.experts.sub"),
    ({"world": {"skills": ["add", "sub", "mul"], "experts": [{"name": "a", "skills": ["add"]},
                                                             {"name": "b", "skills": ["mul"]}]}},
     "world.transfer_experts.t_subdiv"),
    ({"study": {"arms": ["dpo", "random"]}}, "study.arms"),
    ({"study": {"seeds": 0}}, "study.seeds"),
    ({"baselines": {"methods": ["slerp"]}}, "baselines.methods"),
    ({"baselines": {"lambda_range": [1.5, 0.5]}}, "baselines.lambda_range"),
    ({"seed": -1}, "seed"),
    ({"world": {"model": {"hidden_size": 30, "num_attention_heads": 4}}}, "world.model.num_attention_heads"),
    ({"algorithms": ["a/x.py", "b/x.py"]}, "algorithms"),
]


@pytest.mark.parametrize("bad,key", BAD_CONFIGS)
def test_bad_config_names_the_key(bad, key):
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad,key", BAD_CONFIGS)
def test_cli_and_workflow_refuse_the_same_configs_with_one_line(tmp_path, bad, key):
    """The same check in both entry points: `selfdev config` and `snakemake -n`, before anything runs."""
    import subprocess
    import sys

    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    cli = subprocess.run([sys.executable, "-m", "selfdev", "--config", str(path), "config"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert cli.returncode == 2 and cli.stdout == ""
    assert cli.stderr.count("\n") == 1 and key in cli.stderr, cli.stderr
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          "--configfile", str(path), "-n", "--cores", "1"], capture_output=True, text=True)
    assert dry.returncode != 0 and not (tmp_path / "results").exists()
    line = next(l for l in (dry.stdout + dry.stderr).splitlines() if l.startswith("config: "))
    # The same message; the CLI names the file it read, the workflow its merged config.
    assert key in line and cli.stderr.strip().endswith(": " + line.removeprefix("config: "))


def test_config_command_prints_every_default(capsys):
    import yaml

    from selfdev.cli import main

    assert main(["--config", str(REPO / "config" / "config.yaml"), "config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == validate_config({})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_toy_problems_are_gsm8k_format_and_correct():
    rows = toydata.make_split(5, ["add", "sub", "mul", "div"], 50)
    assert toydata.make_split(5, ["add", "sub", "mul", "div"], 50) == rows
    for r in rows:
        assert set(r) == {"question", "answer", "skill"}
        expr, value = r["answer"].split("\n")[0].split("=")
        assert int(reference_answer(r["answer"])) == int(value) == int(eval(expr.replace("/", "//")))
    restricted = toydata.make_split(5, ["add"], 100, restricted=True)
    spec = toydata.SKILLS["add"]
    assert all(int(r["answer"].split("+")[1].split("=")[0]) <= spec.b_restricted.hi for r in restricted)
    with pytest.raises(ValueError, match="unknown skill"):
        toydata.make_problem(__import__("random").Random(0), "pow")


def test_rule_log_ends_on_the_jobs_cpu_seconds(tmp_path):
    """A rule's log ends on its CPU seconds (children included): benchmarks/profile_default.py reads it."""
    import subprocess
    import sys

    from selfdev.io import CPU_LINE, logged

    log = tmp_path / "job.log"
    with logged(log):
        print("working")
        subprocess.run([sys.executable, "-c", "sum(i * i for i in range(4_000_000))"], check=True)
    lines = log.read_text().splitlines()
    assert lines[0] == "working" and lines[-1].startswith(CPU_LINE)
    assert float(lines[-1].split()[-1]) > 0.1  # the child's loop counts
