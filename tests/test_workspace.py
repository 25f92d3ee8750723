"""Workspace store: folders, SQLite state, migrations and atomic writes."""
import sqlite3

import pytest

from workbench import workspace
from workbench.errors import WorkbenchError


def test_create_open_list_delete(workbench_home):
    assert workspace.list_workspaces() == []
    ws = workspace.create_workspace("alpha")
    assert ws.path == workbench_home / "alpha" and ws.db_path.is_file()
    workspace.open_workspace("beta", create=True)
    assert workspace.list_workspaces() == ["alpha", "beta"]
    with pytest.raises(WorkbenchError, match="already exists"):
        workspace.create_workspace("alpha")
    workspace.delete_workspace("alpha")
    assert workspace.list_workspaces() == ["beta"]
    with pytest.raises(WorkbenchError) as missing:
        workspace.open_workspace("alpha")
    assert str(missing.value) == f"field 'workspace': no workspace named 'alpha' in {workbench_home} (known: beta)"


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_bad_names_are_refused(name):
    with pytest.raises(WorkbenchError, match="invalid workspace name"):
        workspace.create_workspace(name)


def test_delete_refuses_a_folder_that_is_not_a_workspace(workbench_home):
    (workbench_home / "notes").mkdir(parents=True)
    (workbench_home / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(WorkbenchError):
        workspace.delete_workspace("notes")
    assert (workbench_home / "notes" / "keep.txt").read_text() == "mine"


def test_state_round_trip_and_overwrite():
    ws = workspace.create_workspace("s")
    assert ws.get_state("missing", {"d": 1}) == {"d": 1}
    ws.set_state("k", {"a": [1, 2], "b": "x"})
    ws.set_state("k", {"a": [3]})
    assert workspace.open_workspace("s").get_state("k") == {"a": [3]}


def test_migrations_run_once_in_order(tmp_path):
    calls = []

    def m1(db):
        calls.append("m1")
        db.execute("CREATE TABLE t (x)")

    def m2(db):
        calls.append("m2")
        db.execute("ALTER TABLE t ADD COLUMN y")

    db = sqlite3.connect(tmp_path / "x.db")
    assert workspace.migrate(db, [m1]) == ["m1"]
    assert workspace.migrate(db, [m1, m2]) == ["m2"]
    assert workspace.migrate(db, [m1, m2]) == []
    assert calls == ["m1", "m2"]
    assert [r[1] for r in db.execute("PRAGMA table_info(t)")] == ["x", "y"]


def test_failed_migration_leaves_nothing_half_done(tmp_path):
    def broken(db):
        db.execute("CREATE TABLE u (x)")
        raise RuntimeError("boom")

    db = sqlite3.connect(tmp_path / "x.db")
    with pytest.raises(RuntimeError):
        workspace.migrate(db, [broken])
    assert db.execute("SELECT count(*) FROM _migrations").fetchone()[0] == 0
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'u'").fetchall() == []


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    workspace.atomic_write_text(target, "old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(workspace.os, "replace", fail)
    with pytest.raises(OSError):
        workspace.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_files_cannot_leave_the_workspace():
    ws = workspace.create_workspace("f")
    assert ws.write_file("uploads/a.txt", b"hi").read_bytes() == b"hi"
    with pytest.raises(WorkbenchError, match="leaves the workspace"):
        ws.write_file("../other.txt", b"x")
