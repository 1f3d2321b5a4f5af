"""Atomic writes: all or nothing, with the usual file mode."""

import os

import pytest

from distill_audit.atomic import atomic_path, write_text


def test_write_replaces_whole_file_with_umask_mode(tmp_path):
    target = tmp_path / "r.json"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "r.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
