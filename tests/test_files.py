"""facefit.files: a folder replaced whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from facefit.files import TEMP_MARK, replaced_dir


def _old(target: Path) -> None:
    target.mkdir(parents=True)
    (target / "a.txt").write_text("old")


def test_a_filled_folder_takes_the_old_ones_place_and_nothing_is_left_beside_it(tmp_path):
    target = tmp_path / "out"
    _old(target)
    with replaced_dir(target) as staging:
        assert staging.parent == tmp_path and TEMP_MARK in staging.name
        (staging / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_fill_leaves_the_old_folder_untouched(tmp_path):
    target = tmp_path / "out"
    _old(target)
    with pytest.raises(RuntimeError), replaced_dir(target) as staging:
        (staging / "b.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "a.txt").read_text() == "old" and not (target / "b.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_old_folder_is_put_back_when_the_new_one_cannot_be_renamed_in(tmp_path, monkeypatch):
    target = tmp_path / "out"
    _old(target)
    rename = Path.rename

    def failing(self, to):
        if TEMP_MARK in self.name and Path(to) == target and (self / "b.txt").exists():
            raise OSError("rename failed")
        return rename(self, to)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError), replaced_dir(target) as staging:
        (staging / "b.txt").write_text("new")
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_missing_parent_is_made(tmp_path):
    with replaced_dir(tmp_path / "a" / "b") as staging:
        (staging / "x").write_text("x")
    assert (tmp_path / "a" / "b" / "x").read_text() == "x"
