import json
import subprocess
import sys

from selfdev.algorithms import reference_paths
from selfdev.cli import main


def test_check_prints_json_and_exits_zero_either_way(tmp_path, capsys):
    assert main(["check", str(reference_paths()["ties"])]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["executable"] is True and verdict["reason"] == "" and verdict["seconds"] > 0
    loop = tmp_path / "loop.py"
    loop.write_text("def merge(t):\n    while True:\n        pass\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sandbox:\n  probe_wall_s: 2\n  cpu_s: 2\n")
    assert main(["--config", str(cfg), "check", "--json", str(loop)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    verdict = json.loads(out)
    assert verdict["executable"] is False and verdict["category"] == "timeout" and verdict["seconds"] < 6


def test_usage_errors_exit_nonzero(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.py")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("sandbox:\n  cpu_s: -1\n")
    assert main(["--config", str(bad), "check", str(reference_paths()["mean"])]) == 2
    assert "sandbox.cpu_s" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"results: {empty}\n")
    assert main(["--config", str(cfg), "score", str(reference_paths()["mean"])]) == 2
    assert "build the world first" in capsys.readouterr().err


def test_console_entry_point_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "selfdev", "check", "--json", str(reference_paths()["mean"])],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["executable"] is True


def test_score_on_micro_world(micro_world, tmp_path, capsys):
    import yaml

    cfg = tmp_path / "micro.yaml"
    cfg.write_text(yaml.safe_dump(micro_world))
    assert main(["--config", str(cfg), "score", str(reference_paths()["task_arithmetic"]), "--split", "test"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["--config", str(cfg), "score", "--json", str(reference_paths()["mean"])]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["format"] == "selfdev.score.v1" and rec["split"] == "dev" and rec["executable"]
