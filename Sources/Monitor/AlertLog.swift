import Foundation
import GRDB

// MARK: - Alert log

/// The agent's own SQLite file of alerting state (`alerts.sqlite` beside the store): the evaluator's ``AlertState``,
/// saved after every round that changed something, and every transition with its time and value, for
/// `GET /v1/alerts/history`.
///
/// It is a separate file from the config store on purpose: alert state is per agent (each evaluates its own metrics)
/// and must not replicate, and a busy alert history must not grow the store's history or revision counter.
///
/// History keeps the newest ``Settings-swift.struct/keepTransitions`` rows; older ones are trimmed as new ones come.
/// Writes use WAL with `synchronous = NORMAL`: a power cut may lose the last round's transitions, never corrupt the
/// file; a crash of the agent process loses nothing committed.
public final class AlertLog: Sendable {
    /// Limits.
    public struct Settings: Sendable, Hashable {
        /// Transitions kept for history. Default 10,000.
        public var keepTransitions = 10_000

        /// The defaults.
        public init() {}
    }

    private let writer: any DatabaseWriter
    private let settings: Settings

    /// Opens (creating when missing) the log at `path`; `nil` opens an in-memory log (tests).
    public init(path: String?, settings: Settings = Settings()) throws {
        if let path {
            var configuration = Configuration()
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
            self.writer = try DatabasePool(path: path, configuration: configuration)
        } else {
            self.writer = try DatabaseQueue()
        }
        self.settings = settings
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-alerts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE alert_state (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        json BLOB NOT NULL,
                        saved_at INTEGER NOT NULL
                    );
                    CREATE TABLE alert_transitions (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        at INTEGER NOT NULL,
                        rule TEXT NOT NULL,
                        from_status TEXT NOT NULL,
                        to_status TEXT NOT NULL,
                        json BLOB NOT NULL
                    );
                    CREATE INDEX alert_transitions_rule ON alert_transitions(rule, id);
                    """)
        }
        try migrator.migrate(self.writer)
    }

    /// The saved evaluator state, or `nil` when none was saved (or it no longer decodes: the agent then starts
    /// fresh rather than refusing to start).
    public func loadState() async throws -> AlertState? {
        let data = try await self.writer.read { db in try Data.fetchOne(db, sql: "SELECT json FROM alert_state WHERE id = 1") }
        return data.flatMap { try? JSONDecoder().decode(AlertState.self, from: $0) }
    }

    /// Saves `state` and appends `transitions`, in one transaction.
    public func save(_ state: AlertState, transitions: [AlertTransition], at now: WallTime) async throws {
        let stateData = Data(state.jsonText().utf8)
        let rows = transitions.map { ($0, Data($0.jsonText().utf8)) }
        let keep = self.settings.keepTransitions
        try await self.writer.write { db in
            try db.execute(
                sql: "INSERT INTO alert_state(id, json, saved_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET json = excluded.json, saved_at = excluded.saved_at",
                arguments: [stateData, now.millisecondsSinceEpoch])
            for (transition, data) in rows {
                try db.execute(
                    sql: "INSERT INTO alert_transitions(at, rule, from_status, to_status, json) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        transition.at.millisecondsSinceEpoch, transition.alert.rule, transition.from.rawValue, transition.to.rawValue, data,
                    ])
            }
            if !rows.isEmpty {
                try db.execute(
                    sql: "DELETE FROM alert_transitions WHERE id <= (SELECT MAX(id) FROM alert_transitions) - ?", arguments: [keep])
            }
        }
    }

    /// Transitions, newest first, of one rule or all.
    public func history(rule: String? = nil, limit: Int = 100) async throws -> [AlertTransition] {
        let rows = try await self.writer.read { db in
            if let rule {
                return try Data.fetchAll(
                    db, sql: "SELECT json FROM alert_transitions WHERE rule = ? ORDER BY id DESC LIMIT ?", arguments: [rule, limit])
            }
            return try Data.fetchAll(db, sql: "SELECT json FROM alert_transitions ORDER BY id DESC LIMIT ?", arguments: [limit])
        }
        let decoder = JSONDecoder()
        return rows.compactMap { try? decoder.decode(AlertTransition.self, from: $0) }
    }

    /// How many transitions are kept.
    public func transitionCount() async throws -> Int {
        try await self.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alert_transitions") ?? 0 }
    }
}
