"""Atomic writes: a failed or killed write loses nothing, a link stays a link, permissions follow the umask."""

from __future__ import annotations

import os
import stat

import pytest

from ondevice.atomic import atomic_dir, atomic_path, write_json_atomic


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_gets_the_permissions_of_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "out" / "a.json", {"x": 1})
        plain = tmp_path / "plain"
        plain.write_text("")
    finally:
        os.umask(old)
    assert _mode(path) == _mode(plain) == 0o644
    assert _mode(path.parent) == 0o755


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = write_json_atomic(tmp_path / "a.json", {"x": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == '{\n  "x": 1\n}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_writing_through_a_link_updates_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = write_json_atomic(tmp_path / "real" / "a.json", {"x": 1})
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json_atomic(link, {"x": 2})
    assert link.is_symlink() and '"x": 2' in target.read_text()

    bundle = tmp_path / "real" / "bundle"
    bundle.mkdir()
    (bundle / "old.txt").write_text("old")
    out = tmp_path / "out"
    out.symlink_to(bundle)
    with atomic_dir(out) as scratch:
        (scratch / out.name).mkdir()
        (scratch / out.name / "new.txt").write_text("new")
    assert out.is_symlink() and sorted(p.name for p in bundle.iterdir()) == ["new.txt"]
    assert not [p for p in (tmp_path / "real").iterdir() if p.name.startswith(".")]  # no scratch left


def test_a_failed_directory_build_keeps_the_old_directory(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    with pytest.raises(RuntimeError), atomic_dir(out) as scratch:
        (scratch / out.name).mkdir()
        raise RuntimeError("export failed")
    assert (out / "keep.txt").read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
