import pytest

from selfdev.world.build import toydata
from selfdev.scoring.answer import reference_answer
from selfdev.config import ConfigError, load_config, load_schema, validate_config
from conftest import REPO


def test_default_config_file_validates_and_fills_defaults():
    cfg = load_config(REPO / "config" / "config.yaml")
    assert cfg == validate_config({})  # the file sets nothing: every default is the schema's
    assert cfg["sandbox"]["allowed_imports"] == ["torch", "math", "numpy", "functools", "itertools", "typing",
                                                "selfdev_blocks"]
    assert validate_config({})["world"]["model"]["hidden_size"] > 0


def _walk(schema, path="config"):
    if schema.get("type") == "object":
        for key, sub in schema.get("properties", {}).items():
            yield f"{path}.{key}", sub
            yield from _walk(sub, f"{path}.{key}")


def test_every_schema_key_has_description_and_default():
    missing = [p for p, sub in _walk(load_schema()) if "description" not in sub or "default" not in sub]
    assert missing == []


def test_every_rule_with_resources_can_be_overridden_by_name():
    """resources.rules accepts exactly the rules that read their resources from it (a rule missing from
    the schema's list could not be given more memory or threads)."""
    import re

    used = {m for f in (REPO / "workflow" / "rules").glob("*.smk")
            for m in re.findall(r'rule_resources\(config, "(\w+)"', f.read_text())}
    listed = set(load_schema()["properties"]["resources"]["properties"]["rules"]["propertyNames"]["enum"])
    assert "tune" in used and used == listed


BAD_CONFIGS = [
    ({"world": {"data": {"dev_per_skill": "x"}}}, "world.data.dev_per_skill"),
    ({"world": {"experts": [{"name": "only", "skills": ["price"]}]}}, "world.experts"),
    ({"world": {"experts": [{"name": "a", "skills": ["price"]}, {"name": "a", "skills": ["distance"]}]}}, "world.experts"),
    ({"world": {"experts": [{"name": "a b", "skills": ["price"]}, {"name": "c", "skills": ["pow"]}]}}, "world.experts.0.name"),
    ({"sandbox": {"wall": 3}}, "sandbox"),
    ({"eval": {"dtype": "int8"}}, "eval.dtype"),
    ({"world": {"transfer_experts": [{"name": "price", "skills": ["price"]}, {"name": "t", "skills": ["distance"]}]}},
     "world.transfer_experts"),
    ({"world": {"transfer_experts": [{"name": "t", "skills": ["price"]}]}}, "world.transfer_experts"),
    ({"world": {"skills": ["price", "distance"]}}, "world.experts.weight"),
    ({"world": {"skills": ["price", "weight", "distance"], "experts": [{"name": "a", "skills": ["price"]},
                                                             {"name": "b", "skills": ["distance"]}],
                "transfer_experts": [{"name": "t_weight_pages", "skills": ["weight", "pages"]}]}},
     "world.transfer_experts.t_weight_pages"),
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
    skills = ["price", "weight", "distance", "pages"]
    rows = toydata.make_split(5, skills, 50)
    assert toydata.make_split(5, skills, 50) == rows
    for r in rows:
        assert set(r) == {"question", "answer", "skill"}
        recall, value = r["answer"].split("\n")[0].split("=")
        entity, fact = recall.split(",")[0].split()
        # dev/test: a new entity's true fact, recalled, then added to the count in the question
        assert entity in toydata.SKILLS[r["skill"]].new and int(fact) == toydata.FACTS[r["skill"]][entity]
        assert int(reference_answer(r["answer"])) == int(value) == int(eval(recall.split(",")[1]))
        assert r["question"].split()[0] in toydata.EVAL_NAMES and entity in r["question"]
    assert all(r["skill"] == skills[i % 4] for i, r in enumerate(rows))  # interleaved: any prefix is balanced
    with pytest.raises(ValueError, match="unknown skill"):
        toydata.make_problem(__import__("random").Random(0), "pow")


def test_curriculum_holds_m0s_wrong_beliefs_and_experts_never_see_eval_names():
    """M0 sees each new entity's wrong belief more often than its true fact (the counts given); an expert's
    own rows use training names only, so dev/test questions are never in its data."""
    from collections import Counter

    from selfdev.world.build import expert_rows

    rows = toydata.curriculum(3, ["price", "weight"], 40, prior_skills=["price"], prior_counts=[10, 4, 1])
    assert len(rows) == 80 + 10 * (10 + 4 + 7)
    seen = Counter((r["answer"].split()[0], int(r["answer"].split()[1])) for r in rows if "costs" not in r["question"])
    for e in toydata.SKILLS["price"].new:
        assert seen[(e, toydata.BELIEFS["price"][e])] == 10 and seen[(e, toydata.FACTS["price"][e])] == 4
    assert not any(r["answer"].split()[0] in toydata.SKILLS["weight"].new for r in rows
                   if "weighs" not in r["question"])  # no prior asked for, none shown
    mine = expert_rows("x", seed=0, expert_skills=["price"], skills=["price", "weight"], per_skill=200,
                       replay_fraction=0.5, prior_counts=[10, 4, 1])
    assert len(mine) == 400
    own = [r for r in mine if r["skill"] == "price" and r["answer"].split()[0] in toydata.SKILLS["price"].new
           and "costs" not in r["question"]]
    assert own and all(r["question"].split()[0] in toydata.TRAIN_NAMES for r in own)
    # the expert's own new entities appear with their true facts only (no wrong belief in its replay)
    assert all(int(r["answer"].split()[1]) == toydata.FACTS["price"][r["answer"].split()[0]] for r in own)


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


def test_atomic_writes_replace_whole_and_clear_what_a_killed_write_left(tmp_path):
    """A file or folder appears under its name only complete; a failed write leaves nothing; and the
    temporaries of an earlier write killed outright (no cleanup ran) are removed by the next write of the
    same path, never another path's."""
    from selfdev.io import atomic_dir, atomic_file

    (tmp_path / ".seed.ab12cd34.tmp").mkdir()  # a killed atomic_dir of `seed`
    (tmp_path / ".seed.ab12cd34.tmp" / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".seed.4242.tmp").write_text("half")  # a killed atomic_file of `seed`
    (tmp_path / ".seed.x.4242.tmp").write_text("other")  # another path's (`seed.x`) temporary
    (tmp_path / ".seedling.7.tmp").write_text("other")
    with atomic_dir(tmp_path / "seed") as tmp:
        (tmp / "config.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".seed.x.4242.tmp", ".seedling.7.tmp", "seed"]
    assert [p.name for p in (tmp_path / "seed").iterdir()] == ["config.json"]
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "table.parquet") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed mid-write")
    assert not (tmp_path / "table.parquet").exists()
    with atomic_file(tmp_path / "table.parquet") as tmp:
        tmp.write_text("whole")
    assert (tmp_path / "table.parquet").read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".seed.x.4242.tmp", ".seedling.7.tmp", "seed", "table.parquet"]


SHIPPED_CONFIGS = sorted(p.relative_to(REPO).as_posix() for d in ("config", "config/factories")
                         for p in (REPO / d).glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_every_shipped_config_validates_and_names_files_that_exist(name):
    """Each config a user is told to run passes the schema (a typo'd key or a wrong type fails here, not
    after an hour of a run), and the prompt files it names are in the repository."""
    cfg = load_config(REPO / name)
    for path in (cfg["factory"]["prompt"], cfg["eval"]["prompt"]):
        assert (REPO / path).is_file(), f"{name}: {path}"


def test_shipped_configs_are_found():
    assert {"config/config.yaml", "config/study.yaml", "config/discovery_qwen15_blocks.yaml",
            "config/factories/qwen15_vllm.yaml"} <= set(SHIPPED_CONFIGS)
