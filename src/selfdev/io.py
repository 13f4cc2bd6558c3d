"""The one I/O module: JSON, JSON lines, parquet tables, safetensors and checkpoint folders.

Every writer is atomic (write beside the target, then rename), so a run killed at any instant never
leaves a truncated file or half-saved folder under the final name; Snakemake's incomplete-output
tracking covers the rest (a job killed mid-way is rerun).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence


def _tmp_beside(path: Path) -> Path:
    # Same folder, so the final rename never crosses a file system; the pid keeps two writers apart.
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write; renamed onto `path` only when the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder to fill; it replaces `path` (whatever was there) only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- JSON -----------------------------------------------------------------------------------------
def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str))


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"expected JSON file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


# --- JSON lines -----------------------------------------------------------------------------------
def read_jsonl(path: str | os.PathLike) -> list[dict]:
    rows = []
    try:
        fh = open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"expected JSON lines file not found: {path}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def write_jsonl(rows: Sequence[dict], path: str | os.PathLike) -> None:
    with atomic_file(path) as tmp, open(tmp, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


# --- parquet tables -------------------------------------------------------------------------------
def write_table(rows: Sequence[dict], path: str | os.PathLike, version: str, columns: Sequence[str]) -> None:
    """Rows as parquet; every row gets `schema_version`; an empty table keeps its columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ["schema_version", *columns]
    data = {c: [version if c == "schema_version" else r.get(c) for r in rows] for c in cols}
    table = pa.table(data) if rows else pa.table({c: pa.array([], pa.string()) for c in cols})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: str | os.PathLike, version: str) -> list[dict]:
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected table not found: {path}")
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: not a readable parquet file ({exc})") from None
    bad = {r.get("schema_version") for r in rows} - {version}
    if bad:
        raise ValueError(f"{path}: schema_version {sorted(map(str, bad))}, expected {version!r}")
    return rows


# --- safetensors ----------------------------------------------------------------------------------
def write_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


# --- workflow logs --------------------------------------------------------------------------------
@contextlib.contextmanager
def logged(log_path: str | os.PathLike) -> Iterator[None]:
    """Send stdout/stderr (progress bars, warnings, tracebacks) to the rule's log file."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as fh:
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        try:
            yield
        except BaseException:
            import traceback

            traceback.print_exc(file=fh)
            raise
        finally:
            sys.stdout, sys.stderr = old
