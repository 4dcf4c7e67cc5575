"""SQLite store of everything the platform receives (schema documented in docs/platform.md).

Every frame, good or bad, is kept verbatim in `frames` (evidence). Data uploads that carry a DataTime
also become one row in `records`, unique per (mn, cn, datatime): a re-sent record is logged as a frame
but not stored twice. Values stay text exactly as on the wire in `record_values`.

Synchronous on purpose: the server calls it from its event loop and groups many frames into one commit
(see server.Committer); nothing here waits on the network.
"""

import os
import sqlite3
import time
import urllib.parse

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id          INTEGER PRIMARY KEY,
    received_at REAL    NOT NULL,
    center      TEXT    NOT NULL,
    peer        TEXT,
    direction   TEXT    NOT NULL DEFAULT 'in',
    mn          TEXT,
    cn          TEXT,
    qn          TEXT,
    crc_ok      INTEGER,
    error       TEXT,
    reply       TEXT,
    raw         BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_mn_time ON frames (mn, received_at);
CREATE TABLE IF NOT EXISTS records (
    id          INTEGER PRIMARY KEY,
    mn          TEXT    NOT NULL,
    cn          TEXT    NOT NULL,
    datatime    TEXT    NOT NULL,
    frame_id    INTEGER NOT NULL REFERENCES frames (id),
    UNIQUE (mn, cn, datatime)
);
CREATE TABLE IF NOT EXISTS record_values (
    record_id   INTEGER NOT NULL REFERENCES records (id),
    code        TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (record_id, code, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
"""


def split_key(key):
    """'a21002-Rtd' -> ('a21002', 'Rtd'); 'RestartTime' -> ('', 'RestartTime')."""
    code, sep, field = key.rpartition("-")
    if not sep:
        return "", key
    return code, field


class Store:
    """One SQLite file (or ':memory:'). `durable=True` fsyncs every commit (synchronous=FULL)."""

    def __init__(self, path, durable=True):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=%s" % ("FULL" if durable else "NORMAL"))
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        self.in_tx = False
        self.pending = 0  # frames written since the last commit

    @classmethod
    def open_readonly(cls, path):
        """An existing store for queries only (export); sqlite3.Error if it is not one."""
        self = cls.__new__(cls)
        self.path = str(path)
        self.db = sqlite3.connect(
            "file:%s?mode=ro" % urllib.parse.quote(os.path.abspath(path)), uri=True, isolation_level=None
        )
        self.db.execute("SELECT COUNT(*) FROM records").fetchone()
        self.in_tx = False
        self.pending = 0
        return self

    def close(self):
        self.commit()
        self.db.close()

    def _begin(self):
        if not self.in_tx:
            self.db.execute("BEGIN")
            self.in_tx = True

    def commit(self):
        if self.in_tx:
            self.db.execute("COMMIT")
            self.in_tx = False
        self.pending = 0

    def add_frame(
        self,
        raw,
        center,
        peer=None,
        mn=None,
        cn=None,
        qn=None,
        crc_ok=None,
        error=None,
        reply=None,
        direction="in",
        received_at=None,
    ):
        """Log one frame (uncommitted until commit()); returns its id."""
        self._begin()
        cur = self.db.execute(
            "INSERT INTO frames (received_at, center, peer, direction, mn, cn, qn, crc_ok, error, reply, raw)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                time.time() if received_at is None else received_at,
                center,
                peer,
                direction,
                mn,
                cn,
                qn,
                None if crc_ok is None else int(bool(crc_ok)),
                error,
                reply,
                bytes(raw),
            ),
        )
        self.pending += 1
        return cur.lastrowid

    def add_record(self, mn, cn, datatime, frame_id, items):
        """Store a data record from `items` ((key, value) pairs, DataTime excluded).

        Returns (record_id, duplicate). A record already stored keeps its first values; parts of a split
        packet (same DataTime) add their new fields, so `duplicate` is True only when nothing was new.
        """
        self._begin()
        cur = self.db.execute(
            "INSERT OR IGNORE INTO records (mn, cn, datatime, frame_id) VALUES (?,?,?,?)",
            (mn, cn, datatime, frame_id),
        )
        if cur.rowcount:
            record_id = cur.lastrowid
            existed = False
        else:
            record_id = self.db.execute(
                "SELECT id FROM records WHERE mn=? AND cn=? AND datatime=?", (mn, cn, datatime)
            ).fetchone()[0]
            existed = True
        rows = []
        for key, value in items:
            code, field = split_key(key)
            rows.append((record_id, code, field, value))
        before = self.db.total_changes
        self.db.executemany(
            "INSERT OR IGNORE INTO record_values (record_id, code, field, value) VALUES (?,?,?,?)", rows
        )
        added = self.db.total_changes - before
        return record_id, existed and added == 0

    def set_reply(self, frame_id, reply):
        self._begin()
        self.db.execute("UPDATE frames SET reply=? WHERE id=?", (reply, frame_id))

    # -- queries (tests, export, live table) -------------------------------------------------------

    def count(self, table, where="", args=()):
        if table not in ("frames", "records", "record_values"):
            raise ValueError(table)
        sql = "SELECT COUNT(*) FROM " + table + ((" WHERE " + where) if where else "")
        return self.db.execute(sql, args).fetchone()[0]

    def query(self, sql, args=()):
        return self.db.execute(sql, args).fetchall()

    def records(self, mn=None, cn=None, begin=None, end=None):
        """Records ordered by (mn, cn, datatime): list of (mn, cn, datatime, frame_id, {key: value}).

        `begin` inclusive, `end` exclusive, both 14-digit YYYYMMDDhhmmss strings.
        """
        clauses = []
        args = []
        for column, op, value in (
            ("mn", "=", mn),
            ("cn", "=", cn),
            ("datatime", ">=", begin),
            ("datatime", "<", end),
        ):
            if value is not None:
                clauses.append("r.%s %s ?" % (column, op))
                args.append(value)
        sql = (
            "SELECT r.id, r.mn, r.cn, r.datatime, r.frame_id, v.code, v.field, v.value FROM records r"
            " LEFT JOIN record_values v ON v.record_id = r.id"
        )
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY r.mn, r.cn, r.datatime, r.id"
        out = []
        last = None
        for rid, rmn, rcn, dt, fid, code, field, value in self.db.execute(sql, args):
            if rid != last:
                out.append((rmn, rcn, dt, fid, {}))
                last = rid
            if field is not None:
                out[-1][4][(code + "-" + field) if code else field] = value
        return out


def check_db_path(path):
    """Raise OSError-free UserError-friendly message text if the db cannot be created; None when fine."""
    path = str(path)
    if path == ":memory:":
        return None
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return "directory %s does not exist" % parent
    if os.path.exists(path):
        if not os.access(path, os.R_OK | os.W_OK):
            return "%s is not readable and writable" % path
    elif not os.access(parent, os.W_OK):
        return "directory %s is not writable" % parent
    return None
