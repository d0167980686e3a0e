"""engine.atomic: the one atomic-write mechanism (risk state, reports, bars, checkpoints): a
failed write leaves the old content and no temporary file; a good one replaces the target whole."""

from __future__ import annotations

import pytest

from engine.atomic import atomic_directory, atomic_path, atomic_write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "state.json"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["state.json"]
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert oct(p.stat().st_mode & 0o777) == oct(0o600)


def test_directory_replaced_whole_or_not_at_all(tmp_path):
    d = tmp_path / "ckpt"
    with atomic_directory(d) as tmp:
        (tmp / "a").write_text("1")
        (tmp / "b").write_text("1")
    with pytest.raises(ValueError):
        with atomic_directory(d) as tmp:
            (tmp / "a").write_text("2")
            raise ValueError("bad weights")
    assert {x.name: x.read_text() for x in d.iterdir()} == {"a": "1", "b": "1"}
    with atomic_directory(d) as tmp:
        (tmp / "c").write_text("3")
    assert [x.name for x in d.iterdir()] == ["c"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]
