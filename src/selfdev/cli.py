"""`selfdev` command line: check and score merging programs by hand; trace a program's lineage; print the config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="selfdev", description="Self-Developing: check and score model-merging programs.")
    p.add_argument("--config", default=None,
                   help="workflow config file (default: config/config.yaml if present, else built-in defaults)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="run a program on probe tensors in the sandbox; print a JSON verdict")
    c.add_argument("program", help="Python file defining merge(task_vectors)")
    c.add_argument("--json", action="store_true", help="print compact JSON on one line (the default is indented)")
    s = sub.add_parser("score", help="print the accuracy of M0 + merge on the built world")
    s.add_argument("program", help="Python file defining merge(task_vectors)")
    s.add_argument("--split", choices=["dev", "test"], default="dev")
    s.add_argument("--json", action="store_true", help="print the whole score record as JSON")
    sub.add_parser("config", help="validate the config and print it with every default filled in (YAML)")
    lg = sub.add_parser("lineage", help="print the factory chain that wrote a program (checkpoints, pairs, parents)")
    lg.add_argument("program", help="candidate id (e.g. dpo-s0-it2-00013) or a code-hash prefix (>= 6 characters)")
    lg.add_argument("--json", action="store_true", help="print the chain as JSON")
    return p


def _config(path: str | None) -> dict:
    from selfdev.config import load_config

    if path is None and Path("config/config.yaml").is_file():
        path = "config/config.yaml"
    return load_config(path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from selfdev.config import ConfigError
    from selfdev.sandbox.isolation import SandboxUnavailable

    try:
        config = _config(args.config)
        if args.command == "config":
            import yaml

            print(yaml.safe_dump(config, sort_keys=False), end="")
            return 0
        if args.command == "lineage":
            from selfdev.study.lineage import chain, format_chain

            info = chain(config["results"], args.program)
            print(json.dumps(info, indent=2) if args.json else format_chain(info))
            return 0
        if not Path(args.program).is_file():
            raise FileNotFoundError(f"algorithm file not found: {args.program}")
        if args.command == "check":
            from selfdev.params import world_depth
            from selfdev.scoring.programs import check_file

            verdict = check_file(args.program, config, world_depth(config))
            print(json.dumps(verdict, indent=None if args.json else 2))
            return 0
        from selfdev.scoring.programs import score_file, world_inputs

        files = world_inputs(config, args.split)
        record = score_file(args.program, config, args.split, files["seed_dir"], files["task_vectors"], files["rows"],
                            files["shots"])
    except (ConfigError, FileNotFoundError, ValueError, KeyError, SandboxUnavailable) as exc:
        print(f"selfdev: error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(record, indent=2))
    elif record["executable"]:
        print(f"{args.split} accuracy {100 * record['accuracy']:.1f}% ({record['n']} problems)")
    else:
        print(f"not executable ({record['category']}): {record['reason']}")
    return 0
