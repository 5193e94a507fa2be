import GRDB

/// Named, append-only schema migrations. Never edit a migration once released: add a new one.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-kv") { db in
            // Every version of every key, in the order this node applied them.
            try db.execute(
                sql: """
                    CREATE TABLE kv_history (
                        revision INTEGER PRIMARY KEY,
                        key TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        value BLOB,
                        content_type TEXT,
                        stamp_wall INTEGER NOT NULL,
                        stamp_counter INTEGER NOT NULL,
                        stamp_node TEXT NOT NULL,
                        parent_wall INTEGER,
                        parent_counter INTEGER,
                        parent_node TEXT,
                        author TEXT,
                        client TEXT,
                        tombstone BOOLEAN NOT NULL DEFAULT 0,
                        conflict BOOLEAN NOT NULL DEFAULT 0,
                        applied_at INTEGER NOT NULL
                    );
                    CREATE INDEX kv_history_key_version ON kv_history(key, version);
                    CREATE INDEX kv_history_applied ON kv_history(applied_at);
                    -- The current version of each key (live or tombstone).
                    CREATE TABLE kv_current (
                        key TEXT PRIMARY KEY,
                        revision INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    -- Node-local counters: revision, compacted_revision.
                    CREATE TABLE kv_meta (
                        name TEXT PRIMARY KEY,
                        value INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    INSERT INTO kv_meta(name, value) VALUES ('revision', 0), ('compacted_revision', 0);
                    """)
        }
        migrator.registerMigration("v2-replication") { db in
            // `stale`: the version arrived after a newer one (a late replica or a concurrent-write loser), so it
            // never became current; watch replays skip it. `bucket`: the digest bucket of the key (anti-entropy).
            try db.execute(
                sql: """
                    ALTER TABLE kv_history ADD COLUMN stale BOOLEAN NOT NULL DEFAULT 0;
                    CREATE UNIQUE INDEX kv_history_key_stamp ON kv_history(key, stamp_wall, stamp_counter, stamp_node);
                    ALTER TABLE kv_current ADD COLUMN bucket INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX kv_current_bucket ON kv_current(bucket);
                    INSERT INTO kv_meta(name, value) VALUES ('last_sync_at', 0);
                    """)
            for key in try String.fetchAll(db, sql: "SELECT key FROM kv_current") {
                try db.execute(sql: "UPDATE kv_current SET bucket = ? WHERE key = ?", arguments: [KeyspaceDigest.bucket(of: key), key])
            }
        }
        migrator.registerMigration("v3-drop-applied-index") { db in
            // No query reads kv_history by applied_at through an index (retention ranks versions per key over the
            // whole table), and every version paid for its entry: one B-tree insert per write and per merge.
            try db.execute(sql: "DROP INDEX IF EXISTS kv_history_applied")
        }
        return migrator
    }
}
