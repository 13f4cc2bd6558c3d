"""Reference merging algorithms shipped as candidate files (they run in the sandbox like any program)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def reference_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(HERE.glob("*.py")) if p.stem != "__init__"}
