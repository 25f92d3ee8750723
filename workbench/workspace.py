"""Workspaces: one folder each, with uploads, a SQLite database of metadata and state, and index files.

Writes are atomic (temp file + os.replace) and the database evolves by ordered migrations, so a crash
never leaves a half-written file and old workspaces open in new versions.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import WorkbenchError

HOME_ENV = "WORKBENCH_HOME"
DB_NAME = "workbench.db"
DEFAULT_WORKSPACE = "sample"
FORMER_HOME = "workspaces"      # relative to the current folder: the home of versions before the per-user one
LAST_USED_FILE = ".last-workspace.json"   # starts with '.', so no workspace can take its name
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")   # whole name: always fullmatch, never match
# Names Windows keeps for devices, with or without an extension ("con.txt"); the digit 0 included, as
# Microsoft's current list has it.
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"{d}{i}" for d in ("COM", "LPT") for i in range(10))})


def user_data_dir(env: Mapping[str, str], platform: str, user_home: Path) -> Path:
    """The per-user data folder of the platform, as the XDG Base Directory spec, Apple and Microsoft place it.

    Written out rather than a dependency: the data folder is the only one needed.
    """
    if platform == "win32":
        return Path(env.get("LOCALAPPDATA") or user_home / "AppData" / "Local")
    if platform == "darwin":
        return user_home / "Library" / "Application Support"
    xdg = env.get("XDG_DATA_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else user_home / ".local" / "share"  # the spec ignores a relative one


def home_dir() -> Path:
    """Folder holding all workspaces: $WORKBENCH_HOME, else `workbench` in the per-user data folder.

    The same folder whatever the current one, so the app and the command line see the same workspaces.
    """
    chosen = os.environ.get(HOME_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    return (user_data_dir(os.environ, sys.platform, Path.home()) / "workbench").resolve()


def former_home(home: Path | None = None) -> Path | None:
    """./workspaces, where earlier versions kept workspaces, if it holds any and is not the home folder."""
    former = Path(FORMER_HOME).resolve()
    if former == (home or home_dir()) or not list_workspaces(former):
        return None
    return former


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# --- schema migrations: append only; each runs once per database, in order -----------------------

def _m001_state(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL)")


def _m002_corpus(db: sqlite3.Connection) -> None:
    db.executescript("""
        CREATE TABLE uploads (sha256 TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
                              stored_path TEXT NOT NULL, added_at REAL NOT NULL, PRIMARY KEY (sha256, kind));
        CREATE TABLE documents (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, upload_sha256 TEXT NOT NULL,
                                fmt TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
                                content_sha256 TEXT NOT NULL, chars INTEGER NOT NULL, tokens INTEGER NOT NULL,
                                lang TEXT NOT NULL, added_at REAL NOT NULL);
        CREATE TABLE qa_pairs (id TEXT PRIMARY KEY, position INTEGER NOT NULL, question TEXT NOT NULL,
                               answer TEXT NOT NULL, doc_ids TEXT NOT NULL, context TEXT NOT NULL,
                               system TEXT NOT NULL, group_id TEXT NOT NULL, category TEXT NOT NULL,
                               source TEXT NOT NULL, added_at REAL NOT NULL);
        CREATE TABLE problems (id INTEGER PRIMARY KEY AUTOINCREMENT, upload TEXT NOT NULL, file TEXT NOT NULL,
                               line INTEGER, level TEXT NOT NULL, message TEXT NOT NULL, added_at REAL NOT NULL);
        CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL
                                 REFERENCES documents(doc_id) ON DELETE CASCADE,
                             position INTEGER NOT NULL, title TEXT NOT NULL, heading_path TEXT NOT NULL,
                             text TEXT NOT NULL, tokens INTEGER NOT NULL, start INTEGER NOT NULL,
                             end INTEGER NOT NULL, content_sha256 TEXT NOT NULL);
        CREATE INDEX chunks_doc ON chunks(doc_id);
        CREATE TABLE embeddings (model_id TEXT NOT NULL, content_sha256 TEXT NOT NULL, dims INTEGER NOT NULL,
                                 vector BLOB NOT NULL, PRIMARY KEY (model_id, content_sha256));
    """)


def _m003_jobs(db: sqlite3.Connection) -> None:
    db.executescript("""
        CREATE TABLE jobs (id TEXT PRIMARY KEY, provider TEXT NOT NULL, base_model TEXT NOT NULL,
                           state TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
                           hyperparameters TEXT NOT NULL, training_file TEXT, validation_file TEXT,
                           fine_tuned_model TEXT, trained_tokens INTEGER, error TEXT,
                           metrics TEXT NOT NULL DEFAULT '[]', events TEXT NOT NULL DEFAULT '[]',
                           split TEXT NOT NULL DEFAULT '{}', settings TEXT NOT NULL DEFAULT '{}');
    """)


def _m004_evaluations(db: sqlite3.Connection) -> None:
    db.executescript("""
        CREATE TABLE eval_runs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, settings TEXT NOT NULL,
                                questions TEXT NOT NULL, state TEXT NOT NULL);
        CREATE TABLE eval_results (run_id TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
                                   arm TEXT NOT NULL, question_id TEXT NOT NULL, result TEXT NOT NULL,
                                   PRIMARY KEY (run_id, arm, question_id));
    """)


def _m005_stable_ids_and_training_records(db: sqlite3.Connection) -> None:
    """Pair ids made from row positions become content-based (the saved split and jobs follow); each job
    records what it was trained on; each evaluation run records its overlap with it."""
    from .corpus import pair_id
    from .overlap import TrainingRecord
    from .parsing import QAPair

    db.execute("ALTER TABLE jobs ADD COLUMN trained_on TEXT NOT NULL DEFAULT '{}'")
    db.execute("ALTER TABLE eval_runs ADD COLUMN overlap TEXT NOT NULL DEFAULT '{}'")
    renamed: dict[str, str] = {}
    repeats: dict[str, int] = {}
    for row in db.execute("SELECT id, source, question FROM qa_pairs ORDER BY position").fetchall():
        if re.fullmatch(re.escape(row[1]) + r"#\d+", row[0]):
            base = pair_id(row[1], row[2])
            repeats[base] = repeats.get(base, 0) + 1
            renamed[row[0]] = base if repeats[base] == 1 else f"{base}-{repeats[base]}"
    for old, new in renamed.items():
        db.execute("UPDATE qa_pairs SET id = ?, group_id = CASE WHEN group_id = ? THEN ? ELSE group_id END "
                   "WHERE id = ?", (new, old, new, old))

    def rename(split: dict[str, Any]) -> dict[str, Any]:
        return {k: [renamed.get(i, i) for i in v] if isinstance(v, list) else v for k, v in split.items()}

    row = db.execute("SELECT value FROM state WHERE key = 'finetune_split'").fetchone()
    if row:
        db.execute("UPDATE state SET value = ? WHERE key = 'finetune_split'", (json.dumps(rename(json.loads(row[0]))),))
    cols = ("id", "position", "question", "answer", "doc_ids", "context", "system", "group_id", "category", "source")
    pairs = {r[0]: QAPair(question=r[2], answer=r[3], group=r[7], id=r[0], source=r[9])
             for r in db.execute(f"SELECT {', '.join(cols)} FROM qa_pairs")}
    for job_id, split_json in db.execute("SELECT id, split FROM jobs").fetchall():
        split = rename(json.loads(split_json or "{}"))
        seen_train = [pairs[i] for i in split.get("train", []) if i in pairs]
        seen_dev = [pairs[i] for i in split.get("validation", split.get("dev", [])) if i in pairs]
        record = TrainingRecord.of(seen_train, seen_dev, note="recorded from the job's split when the workspace was "
                                                              "upgraded; its validation side counts as seen")
        db.execute("UPDATE jobs SET split = ?, trained_on = ? WHERE id = ?",
                   (json.dumps(split), json.dumps(record.to_dict()), job_id))


def _m006_captured_answers(db: sqlite3.Connection) -> None:
    """Answers of a fine-tuned model kept as a frozen arm (capture.py)."""
    db.executescript("""
        CREATE TABLE captures (id TEXT PRIMARY KEY, model TEXT NOT NULL, created_at REAL NOT NULL,
                               questions INTEGER NOT NULL, trained_on TEXT NOT NULL);
        CREATE TABLE captured_answers (capture_id TEXT NOT NULL REFERENCES captures(id) ON DELETE CASCADE,
                                       question_id TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
                                       abstained INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,
                                       completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL,
                                       created_at REAL NOT NULL, PRIMARY KEY (capture_id, question_id));
    """)


def _m007_generated_pairs(db: sqlite3.Connection) -> None:
    """Question/answer pairs generated from the documents, kept or rejected, then reviewed (synthetic.py)."""
    db.executescript("""
        CREATE TABLE generation_runs (id TEXT PRIMARY KEY, settings TEXT NOT NULL, generator TEXT NOT NULL,
                                      created_at REAL NOT NULL, planned INTEGER NOT NULL);
        CREATE TABLE generated_pairs (id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES generation_runs(id),
                                      position INTEGER NOT NULL, kind TEXT NOT NULL, question TEXT NOT NULL,
                                      answer TEXT NOT NULL, doc_id TEXT NOT NULL, chunk_id INTEGER NOT NULL,
                                      chunk_sha TEXT NOT NULL, passage TEXT NOT NULL, generator TEXT NOT NULL,
                                      status TEXT NOT NULL, reason TEXT NOT NULL, group_id TEXT NOT NULL,
                                      source_question TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
                                      completion_tokens INTEGER NOT NULL, seconds REAL NOT NULL,
                                      created_at REAL NOT NULL, UNIQUE (run_id, position));
    """)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_state, _m002_corpus, _m003_jobs, _m004_evaluations,
                                                           _m005_stable_ids_and_training_records,
                                                           _m006_captured_answers, _m007_generated_pairs]


def migrate(db: sqlite3.Connection, migrations: list[Callable[[sqlite3.Connection], None]] | None = None) -> list[str]:
    """Apply the migrations not yet recorded in the database; returns the names applied."""
    migrations = MIGRATIONS if migrations is None else migrations
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for fn in migrations:
        if fn.__name__ in done:
            continue
        db.execute("BEGIN")  # explicit, so schema changes roll back too
        try:
            fn(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, time.time()))
        except BaseException:
            db.rollback()
            raise
        db.commit()
        applied.append(fn.__name__)
    return applied


@dataclass(frozen=True)
class Workspace:
    """An opened workspace folder."""

    name: str
    path: Path

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction: committed on success, rolled back on error, always closed."""
        conn = sqlite3.connect(self.db_path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            with conn:
                yield conn
        finally:
            conn.close()

    def get_state(self, key: str, default: Any = None) -> Any:
        with self.db() as db:
            row = db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def set_state(self, key: str, value: Any) -> None:
        payload = json.dumps(value, sort_keys=True)
        with self.db() as db:
            db.execute("INSERT INTO state VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                       "value = excluded.value, updated_at = excluded.updated_at", (key, payload, time.time()))

    def file(self, relpath: str) -> Path:
        """Path of a file inside the workspace; refuses paths that would leave it."""
        target = (self.path / relpath).resolve()
        if self.path.resolve() not in target.parents:
            raise WorkbenchError(f"path leaves the workspace: {relpath}")
        return target

    def write_file(self, relpath: str, data: bytes) -> Path:
        target = self.file(relpath)
        atomic_write_bytes(target, data)
        return target


def _name_problem(name: object) -> str | None:
    """What is wrong with a workspace name, or None; the name becomes a folder name on every platform."""
    if not isinstance(name, str):
        return f"a name is text, not {type(name).__name__}"
    if _NAME.fullmatch(name):
        device = name.split(".")[0]
        if device.upper() in _WINDOWS_RESERVED:
            return (f"'{device}' is a device name on Windows (CON, PRN, AUX, NUL, COM0-COM9, LPT0-LPT9, "
                    "with or without an extension)")
        if name.endswith("."):
            return "it ends with '.', which Windows drops from folder names"
        return None
    if not name:
        return "the name is empty"
    if len(name) > 64:
        return f"the name is {len(name)} characters long; at most 64"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}; use only letters, digits, '.', '_' or '-'"
    return "it must start with a letter or digit"


def _shown(name: object) -> str:
    """A name as a message quotes it: printable, and at most 80 characters."""
    shown = name if isinstance(name, str) and name.isprintable() else repr(name).strip("'\"")
    return shown if len(shown) <= 80 else shown[:80] + "..."


def _check_name(name: str) -> str:
    problem = _name_problem(name)
    if problem:
        raise WorkbenchError(f"invalid workspace name '{_shown(name)}': {problem}", field="workspace")
    return name


def _open(path: Path, name: str) -> Workspace:
    ws = Workspace(name, path)
    with ws.db() as db:
        db.execute("PRAGMA journal_mode=WAL")  # kept in the database file: set once, not per connection
        migrate(db)
    return ws


def create_workspace(name: str, home: Path | None = None) -> Workspace:
    """Create a new, empty workspace; an existing one of that name is an error."""
    path = (home or home_dir()) / _check_name(name)
    if (path / DB_NAME).exists():
        raise WorkbenchError(f"workspace '{name}' already exists", field="workspace")
    path.mkdir(parents=True, exist_ok=True)
    return _open(path, name)


def open_workspace(name: str, home: Path | None = None, create: bool = False) -> Workspace:
    """Open an existing workspace (bringing its database up to date), or create it if asked."""
    path = (home or home_dir()) / _check_name(name)
    if not (path / DB_NAME).exists():
        if create:
            return create_workspace(name, home)
        raise WorkbenchError(missing_message(name, home), field="workspace")
    return _open(path, name)


def workspace_exists(name: str, home: Path | None = None) -> bool:
    """Whether the home folder holds a workspace of this name; an invalid name is an error."""
    return ((home or home_dir()) / _check_name(name) / DB_NAME).is_file()


def missing_message(name: str, home: Path | None = None) -> str:
    """Why a workspace cannot be opened: the home folder looked in, the workspaces it has, and where an
    earlier version may have kept it."""
    root = home or home_dir()
    known = ", ".join(list_workspaces(root)) or "none yet"
    message = f"no workspace named '{_shown(name)}' in {root} (known: {known})"
    former = former_home(root)
    if former and name in list_workspaces(former):
        message += f"; {former}, where earlier versions kept workspaces, has one: set {HOME_ENV}={former} to use it"
    return message


def list_workspaces(home: Path | None = None) -> list[str]:
    root = home or home_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / DB_NAME).is_file())


def delete_workspace(name: str, home: Path | None = None) -> None:
    """Delete a workspace folder and everything in it."""
    path = (home or home_dir()) / _check_name(name)
    if not (path / DB_NAME).is_file():
        raise WorkbenchError(f"no workspace named '{name}'", field="workspace")
    shutil.rmtree(path)


def last_used(home: Path | None = None) -> str | None:
    """The workspace last opened in the app from this home folder, if it still exists."""
    root = home or home_dir()
    try:
        name = json.loads((root / LAST_USED_FILE).read_text(encoding="utf-8")).get("workspace")
    except (OSError, ValueError, AttributeError):   # none yet, or not the JSON object written below
        return None
    if _name_problem(name) or not (root / name / DB_NAME).is_file():
        return None
    return name


def remember_last_used(name: str, home: Path | None = None) -> None:
    """Record the workspace just opened, so the next session starts there."""
    root = home or home_dir()
    atomic_write_text(root / LAST_USED_FILE, json.dumps({"workspace": _check_name(name)}))


def start_workspace(linked: str | None = None, flag: str | None = None,
                    home: Path | None = None) -> tuple[str, str | None]:
    """The workspace a new app session opens, and why the linked one was passed over (None if it was not).

    A link (?workspace=NAME) opens an existing workspace or the sample, never a new one; without a usable
    link: the server's --workspace flag, else the last used workspace, else the sample.
    """
    root = home or home_dir()
    fallback = flag or last_used(root) or DEFAULT_WORKSPACE
    if not linked:
        return fallback, None
    problem = _name_problem(linked)
    if problem:
        why = f"The link names an invalid workspace '{_shown(linked)}': {problem}"
    elif linked != DEFAULT_WORKSPACE and not (root / linked / DB_NAME).is_file():
        why = f"The link names a workspace that is not here: {missing_message(linked, root)}"
    else:
        return linked, None
    return fallback, f"{why}. Opened '{fallback}' instead."


def revision(ws: Workspace) -> tuple:
    """Changes whenever anything derived from the workspace may have changed: its database (any write touches
    it or its write-ahead log), the config files, and the date (lifecycle dates move with the calendar).
    Cheap enough for a page to check on every rerun before reusing what it computed."""
    from .config import config_dir

    files = [ws.db_path, ws.db_path.with_name(ws.db_path.name + "-wal"), *sorted(config_dir().glob("*.yaml"))]

    def stamp(f: Path) -> tuple[int, int] | None:
        try:
            st = f.stat()
        except FileNotFoundError:             # the write-ahead log goes when its last connection closes
            return None
        return st.st_mtime_ns, st.st_size

    return (str(ws.path), dt.date.today().isoformat()) + tuple(stamp(f) for f in files)
