"""Files replaced whole (indexer/files.py): a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import pytest

from indexer.files import replacing, write_whole


def test_write_whole_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "status.json"
    write_whole(target, "old")
    write_whole(target, "new", durable=True)
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "CURRENT"
    target.write_text("v1\n")
    with pytest.raises(OSError, match="disk full"), replacing(target) as tmp:
        tmp.write_text("v2")
        assert tmp.name.startswith("CURRENT.") and tmp.name.endswith(".tmp")  # what gc's CURRENT.*.tmp finds
        raise OSError("disk full")
    assert target.read_text() == "v1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["CURRENT"]
