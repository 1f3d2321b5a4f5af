"""Atomic writes: all or nothing, with the usual file mode."""

import os

import pytest

from distill_audit.atomic import atomic_dir, atomic_path, write_text


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
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_dir_replaces_the_folder_or_leaves_it_alone(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "c.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o777 & ~mask


def test_atomic_dir_keeps_a_finished_copy(tmp_path):
    target = tmp_path / "cache"
    with atomic_dir(target) as tmp:
        (tmp / "first").write_text("1")
    with atomic_dir(target, keep_existing=lambda folder: (folder / "first").is_file()) as tmp:
        (tmp / "second").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["first"]
