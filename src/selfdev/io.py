"""The one I/O module: JSON, JSON lines, parquet tables, safetensors and checkpoint folders.

Every writer is atomic (write beside the target, then rename), so a run killed at any instant never
leaves a truncated file or half-saved folder under the final name; Snakemake's incomplete-output
tracking covers the rest (a job killed mid-way is rerun).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence


def _tmp_beside(path: Path) -> Path:
    # Same folder, so the final rename never crosses a file system; the pid keeps two writers apart.
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _clear_leftovers(path: Path) -> None:
    """Remove the temporaries an earlier write of `path` left when its process was killed (SIGKILL, out of
    memory: no `finally` ran). Only this path's own: `.{name}.{pid or random}.tmp`, no dot in the middle, so
    another output whose name starts with this one's keeps its temporaries; one job writes one path."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]+\.tmp")
    if not path.parent.is_dir():
        return
    for old in path.parent.iterdir():
        if pattern.fullmatch(old.name):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write; renamed onto `path` only when the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(path)
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
    _clear_leftovers(path)
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


_ST_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
              "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def write_safetensors_stream(path: str | os.PathLike, specs: Sequence[tuple[str, str, Sequence[int]]], tensors,
                             metadata: dict[str, str] | None = None) -> None:
    """A safetensors file written one tensor at a time: `specs` (name, torch dtype name, shape) fix the
    header first, then `tensors` yields (name, tensor) in the same order. The safetensors package only
    saves a whole dict, which for a 7B model's task vector would put every tensor in memory at once."""
    import struct

    import torch

    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in specs:
        n = int(torch.Size(shape).numel()) * torch.empty((), dtype=getattr(torch, dtype)).element_size()
        header[name] = {"dtype": _ST_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format aligns the data to 8 bytes
    order = [name for name, _, _ in specs]
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for i, (name, tensor) in enumerate(tensors):
            if i >= len(order) or name != order[i]:
                raise ValueError(f"{path}: tensor {name!r} out of the declared order")
            want = header[name]
            if _ST_DTYPES[str(tensor.dtype).removeprefix("torch.")] != want["dtype"] or list(tensor.shape) != want["shape"]:
                raise ValueError(f"{path}: tensor {name!r} is {tensor.dtype} {tuple(tensor.shape)}, "
                                 f"declared {want['dtype']} {tuple(want['shape'])}")
            fh.write(memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
        if fh.tell() != 8 + len(raw) + offset:
            raise ValueError(f"{path}: fewer tensors written than declared ({len(order)})")


class SafetensorsFile:
    """One safetensors file read tensor by tensor with plain reads (no memory map): a read tensor is
    the only memory it takes, so streaming over a 7B checkpoint holds one parameter at a time (mapped
    pages would count towards the process's resident memory until the map is dropped). The file stays
    open (read-only descriptor `fd`) and is read with pread, so a sandboxed child that may not open
    files can still read the tensors it is given when its parent keeps `fd` open for it."""

    def __init__(self, path: str | os.PathLike):
        import struct

        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
        except FileNotFoundError:
            raise FileNotFoundError(f"safetensors file not found: {self.path}") from None
        except (struct.error, ValueError, UnicodeDecodeError):
            raise ValueError(f"{self.path}: not a safetensors file (unreadable header)") from None
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._entries = header
        self._data_start = 8 + n
        self._torch_dtypes = {v: k for k, v in _ST_DTYPES.items()}
        self.fd = os.open(self.path, os.O_RDONLY)

    def __del__(self):
        fd = getattr(self, "fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def keys(self) -> list[str]:
        return list(self._entries)

    def dtype(self, name: str) -> str:
        """The torch dtype name (float32, bfloat16, ...) of a tensor."""
        return self._torch_dtypes.get(self._entries[name]["dtype"], "other")

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._entries[name]["shape"])

    def get(self, name: str):
        import torch

        entry = self._entries[name]
        begin, end = entry["data_offsets"]
        buf = bytearray(end - begin)
        view, done = memoryview(buf), 0
        while done < len(buf):  # pread may return less than asked for (e.g. > 2 GiB)
            got = os.preadv(self.fd, [view[done:]], self._data_start + begin + done)
            if got <= 0:
                raise ValueError(f"{self.path}: truncated data for tensor {name!r}")
            done += got
        dtype = getattr(torch, self.dtype(name))
        if not buf:
            return torch.empty(entry["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(entry["shape"])


# --- workflow logs --------------------------------------------------------------------------------
CPU_LINE = "selfdev: cpu_seconds"


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process and its waited-for children (sandboxes) used so far."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def logged(log_path: str | os.PathLike) -> Iterator[None]:
    """Send stdout/stderr (progress bars, warnings, tracebacks) to the rule's log file; its last line
    gives the job's CPU seconds (`selfdev: cpu_seconds X`, read by benchmarks/profile_default.py:
    Snakemake's benchmark files sample CPU time every 30 s and miss the end of longer jobs)."""
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
            print(f"{CPU_LINE} {cpu_seconds():.2f}", file=fh)
            sys.stdout, sys.stderr = old
