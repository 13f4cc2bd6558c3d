"""The README and docs/ name only what exists: every repository path they mention, every relative link,
every fenced command's script, config file, profile, make target and `selfdev` subcommand."""

import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Top-level entries of the repository a path in the docs starts with (results/ is output, not checked).
ROOTS = ("src/", "workflow/", "config/", "benchmarks/", "tests/", "profiles/", "docs/", "requirements/", ".ci/")
PATH = re.compile(r"(?<![\w./-])((?:%s)[\w./-]*)" % "|".join(re.escape(r) for r in ROOTS))


def _code_spans(text: str) -> list[str]:
    """Inline code and fenced blocks: where the docs name files and commands."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M))
    return fenced + inline


def repository_paths(text: str) -> set[str]:
    """Repository paths named in code spans, fenced blocks and links (placeholders and globs left out)."""
    found = set()
    for span in _code_spans(text) + re.findall(r"\]\(([^)#\s]+)", text):
        for m in PATH.finditer(span):
            path = m.group(1).rstrip(".,;:")
            if not re.search(r"[<>{}*]", path):
                found.add(path)
    return found


def fenced_commands(text: str) -> list[list[str]]:
    """Each command line of the ```bash blocks, split like a shell would (comments dropped)."""
    out = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))


def _selfdev_commands() -> set[str]:
    return set(re.findall(r'add_parser\("(\w+)"', (REPO / "src" / "selfdev" / "cli.py").read_text()))


def command_problems(argv: list[str]) -> list[str]:
    """What a fenced command names that the repository lacks."""
    problems = []
    if argv[0] == "make" and len(argv) > 1 and "=" not in argv[1] and argv[1] not in _make_targets():
        problems.append(f"make target {argv[1]!r}")
    if argv[0] in ("selfdev",) or argv[:3] == ["python", "-m", "selfdev"]:
        sub = argv[3] if argv[0] == "python" else argv[1]
        if not sub.startswith("-") and sub not in _selfdev_commands():
            problems.append(f"selfdev subcommand {sub!r}")
    if argv[0] == "python" and len(argv) > 1 and argv[1].endswith(".py") and not (REPO / argv[1]).is_file():
        problems.append(f"script {argv[1]}")
    if argv[0].startswith(("./", ".ci/")) and not (REPO / argv[0]).is_file():
        problems.append(f"program {argv[0]}")
    for flag in ("--configfile", "--workflow-profile", "-s"):
        if flag in argv:
            value = argv[argv.index(flag) + 1]
            if not (REPO / value).exists():
                problems.append(f"{flag} {value}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_named_path_exists(doc):
    text = doc.read_text()
    missing = sorted(p for p in repository_paths(text) if not (REPO / p).exists())
    links = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if not t.startswith(("http://", "https://"))]
    missing += sorted(t for t in links if not (doc.parent / t).exists())
    assert not missing, f"{doc.name} names what the repository lacks: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_fenced_command_names_what_exists(doc):
    problems = [f"{' '.join(argv)}: {p}" for argv in fenced_commands(doc.read_text()) for p in command_problems(argv)]
    assert not problems, problems


def test_the_checks_catch_what_is_missing():
    """The extractors find paths and commands, and report a wrong one."""
    text = ("Run `benchmarks/no_such.py` or see [the docs](docs/nowhere.md) and `src/selfdev/io.py`.\n"
            "```bash\nmake nosuchtarget\nselfdev nosuch x.py\npython benchmarks/gone.py\n"
            "snakemake --configfile config/none.yaml\nselfdev check a.py   # fine\n```\n")
    assert repository_paths(text) == {"benchmarks/no_such.py", "docs/nowhere.md", "src/selfdev/io.py",
                                      "benchmarks/gone.py", "config/none.yaml"}
    problems = [p for argv in fenced_commands(text) for p in command_problems(argv)]
    assert problems == ["make target 'nosuchtarget'", "selfdev subcommand 'nosuch'", "script benchmarks/gone.py",
                        "--configfile config/none.yaml"]
    assert len(DOCS) >= 7 and sum(len(repository_paths(d.read_text())) for d in DOCS) > 50
