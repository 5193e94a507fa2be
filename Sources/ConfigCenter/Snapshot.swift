import Crypto
import Foundation
import GRDB
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What a snapshot file says about itself: the metadata line of the format described on `Snapshot`.
public struct SnapshotInfo: Sendable, Codable, Equatable {
    /// SHA-256 of the SQLite bytes, lowercase hex.
    public var sha256: String
    /// Size of the SQLite bytes.
    public var bytes: Int
    /// The node the snapshot was taken on.
    public var node: String
    /// The node revision the snapshot holds: every change up to it, none after.
    public var revision: Int64
    /// Live keys in the snapshot.
    public var keys: Int
    /// When the snapshot was taken, ISO-8601 (UTC).
    public var created: String

    public init(sha256: String, bytes: Int, node: String, revision: Int64, keys: Int, created: String) {
        self.sha256 = sha256
        self.bytes = bytes
        self.node = node
        self.revision = revision
        self.keys = keys
        self.created = created
    }
}

extension ConfigStore {
    /// Writes a consistent copy of the whole store (every key, all history, metadata) to `url`.
    ///
    /// The copy is SQLite's online backup, taken inside one read transaction, so it holds exactly the changes
    /// up to one revision while writers carry on (WAL). It goes to a temporary SQLite file next to `url`, is
    /// wrapped in the snapshot format (see `Snapshot`), fsynced and renamed over `url`: a failed save never
    /// leaves a partial file at `url`. The file is created readable by its owner only (it holds every value).
    public func saveSnapshot(to url: URL) async throws -> SnapshotInfo {
        let directory = url.deletingLastPathComponent()
        let token = UUID().uuidString
        let databaseURL = directory.appendingPathComponent(".\(url.lastPathComponent).\(token).sqlite")
        let partURL = directory.appendingPathComponent(".\(url.lastPathComponent).\(token).part")
        defer { SnapshotFiles.removeDatabase(at: databaseURL) }
        do {
            // Pre-create the copy so it gets owner-only permissions; SQLite takes an empty file as an empty database.
            try SnapshotFiles.create(databaseURL)
            let copy = try DatabaseQueue(path: databaseURL.path)
            let (revision, keys) = try await self.dbWriter.read { db -> (Int64, Int) in
                // One read transaction: the counts and the copied pages are the same state.
                let revision = try Self.revision(db)
                let keys =
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM kv_current c JOIN kv_history h ON h.revision = c.revision WHERE h.tombstone = 0") ?? 0
                try copy.writeWithoutTransaction { destination in try db.backup(to: destination) }
                return (revision, keys)
            }
            try copy.close()

            let (digest, bytes) = try SnapshotFiles.sha256(of: databaseURL)
            let info = SnapshotInfo(
                sha256: digest, bytes: bytes, node: self.settings.nodeName, revision: revision, keys: keys,
                created: Date().formatted(.iso8601))
            try SnapshotFiles.writeDurably(partURL) { output in
                try output.write(contentsOf: Data(Snapshot.header.utf8))
                try output.write(contentsOf: Data((try Snapshot.metadataLine(info) + "\n").utf8))
                try SnapshotFiles.copy(from: databaseURL, to: output)
            }
            try SnapshotFiles.rename(partURL, to: url)
            SnapshotFiles.syncDirectory(directory)
            self.settings.logger.info(
                "snapshot saved",
                metadata: ["snapshot.path": "\(url.path)", "snapshot.revision": "\(revision)", "snapshot.bytes": "\(bytes)"])
            return info
        } catch {
            try? FileManager.default.removeItem(at: partURL)
            if let error = error as? ConfigStoreError { throw error }
            throw ConfigStoreError(code: .storage, message: "saving a snapshot to \(url.path) failed: \(error)", cause: error)
        }
    }
}

/// Snapshot files: a consistent copy of one agent's store in a self-describing single file.
///
/// Format, version 1:
/// ```
/// GOSSAMER-SNAPSHOT 1\n
/// {"sha256":"<hex>","bytes":N,"node":"n1","revision":R,"keys":K,"created":"<ISO-8601>"}\n
/// <N bytes: the SQLite database file>
/// ```
/// `read` checks all of it; `restore` turns a snapshot back into a data directory.
public enum Snapshot {
    /// The first line of every snapshot file.
    static let header = "GOSSAMER-SNAPSHOT 1\n"
    static let magic = "GOSSAMER-SNAPSHOT "
    /// Longest metadata line accepted (it is about 200 bytes; this only bounds the search for its end).
    static let maxMetadataBytes = 64 * 1024
    /// The file name of the store in a data directory (as `ConfigStore(directory:settings:)` opens it).
    static let databaseName = "gossamer.sqlite"

    /// Reads and verifies a snapshot: header, metadata, length and SHA-256. Returns the metadata and the
    /// SQLite bytes. Throws a `badRequest` `ConfigStoreError` naming what is wrong.
    public static func read(_ url: URL) throws -> (SnapshotInfo, Data) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) {
                throw ConfigStoreError(code: .notFound, message: "no snapshot file at \(url.path)")
            }
            throw ConfigStoreError(code: .storage, message: "cannot read the snapshot \(url.path): \(error)", cause: error)
        }
        return try self.parse(data, name: url.path)
    }

    /// Verifies snapshot bytes (`read` without the file); `name` goes into error messages.
    static func parse(_ data: Data, name: String) throws -> (SnapshotInfo, Data) {
        func fail(_ message: String) -> ConfigStoreError { .badRequest("\(name): \(message)") }
        let bytes = [UInt8](data.prefix(self.header.utf8.count))
        let header = Array(self.header.utf8)
        guard bytes == header else {
            if data.isEmpty { throw fail("not a Gossamer snapshot (the file is empty)") }
            if bytes.count < header.count && header.starts(with: bytes) {
                throw fail("snapshot is truncated: the file ends inside its header line")
            }
            if bytes.starts(with: Array(self.magic.utf8)) {
                let line = data.prefix(64).split(separator: 0x0A, maxSplits: 1, omittingEmptySubsequences: false).first ?? Data()
                let version = String(decoding: line.dropFirst(self.magic.utf8.count), as: UTF8.self)
                throw fail("snapshot format '\(version)' is not supported; this gossamer reads format 1")
            }
            throw fail("not a Gossamer snapshot (it does not start with 'GOSSAMER-SNAPSHOT 1')")
        }
        let metadataStart = data.startIndex + header.count
        let searchEnd = min(data.endIndex, metadataStart + self.maxMetadataBytes)
        guard let newline = data[metadataStart..<searchEnd].firstIndex(of: 0x0A) else {
            if searchEnd == data.endIndex { throw fail("snapshot is truncated: the file ends inside its metadata line") }
            throw fail("snapshot is corrupt: no metadata line after the header")
        }
        let info: SnapshotInfo
        do {
            info = try JSONDecoder().decode(SnapshotInfo.self, from: data[metadataStart..<newline])
        } catch {
            throw fail("snapshot is corrupt: the metadata line is not valid snapshot JSON (\(error))")
        }
        guard info.bytes >= 0, info.sha256.count == 64, info.sha256.allSatisfy({ $0.isHexDigit }) else {
            throw fail("snapshot is corrupt: the metadata line has an invalid size or hash")
        }
        let payload = data[(newline + 1)...]
        if payload.count < info.bytes {
            throw fail("snapshot is truncated: expected \(info.bytes) bytes, found \(payload.count)")
        }
        if payload.count > info.bytes {
            throw fail("snapshot is corrupt: expected \(info.bytes) bytes, found \(payload.count) (trailing data)")
        }
        let digest = SnapshotFiles.hex(SHA256.hash(data: payload))
        guard digest == info.sha256.lowercased() else {
            throw fail("snapshot is corrupt: SHA-256 mismatch (the metadata says \(info.sha256), the content hashes to \(digest))")
        }
        return (info, Data(payload))
    }

    /// Restores a snapshot into a data directory, for an agent to start on (offline: no agent may be using `dir`).
    ///
    /// Verifies the snapshot (`read`), refuses a directory that already holds a store, creates `dir` if needed,
    /// writes `gossamer.sqlite` atomically (temporary file, fsync, link into place), then opens it once and
    /// requires `PRAGMA integrity_check` to answer "ok" and the revision to match the metadata; if not, the
    /// restored file is removed again.
    public static func restore(_ url: URL, intoDataDir dir: URL) throws -> SnapshotInfo {
        let (info, bytes) = try self.read(url)
        let target = dir.appendingPathComponent(self.databaseName)
        let existsMessage =
            "\(dir.path) already holds a store (\(self.databaseName)); restore into an empty --data-dir (or move that store away first)"
        let fileManager = FileManager.default
        for suffix in ["", "-wal", "-shm", "-journal"] where fileManager.fileExists(atPath: target.path + suffix) {
            throw ConfigStoreError.badRequest(existsMessage)
        }
        let temporary = dir.appendingPathComponent(".\(self.databaseName).restore-\(UUID().uuidString)")
        do {
            try fileManager.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? fileManager.removeItem(at: temporary) }
            try SnapshotFiles.writeDurably(temporary) { output in try output.write(contentsOf: bytes) }
            // link(2) never replaces: if a store appeared meanwhile, it is left alone.
            guard link(temporary.path, target.path) == 0 else {
                let code = errno
                if code == EEXIST { throw ConfigStoreError.badRequest(existsMessage) }
                throw ConfigStoreError(code: .storage, message: "cannot create \(target.path): \(String(cString: strerror(code)))")
            }
            SnapshotFiles.syncDirectory(dir)
        } catch let error as ConfigStoreError {
            throw error
        } catch {
            throw ConfigStoreError(code: .storage, message: "restoring into \(dir.path) failed: \(error)", cause: error)
        }

        do {
            let queue = try DatabaseQueue(path: target.path)
            let (check, revision) = try queue.read { db in
                (
                    try String.fetchAll(db, sql: "PRAGMA integrity_check"),
                    try Int64.fetchOne(db, sql: "SELECT value FROM kv_meta WHERE name = 'revision'") ?? 0
                )
            }
            try queue.close()
            guard check == ["ok"] else {
                throw ConfigStoreError.badRequest(
                    "\(url.path): snapshot is corrupt: PRAGMA integrity_check says \(check.prefix(5).joined(separator: "; "))")
            }
            guard revision == info.revision else {
                throw ConfigStoreError.badRequest(
                    "\(url.path): snapshot is corrupt: its database is at revision \(revision), its metadata says \(info.revision)")
            }
        } catch {
            SnapshotFiles.removeDatabase(at: target)
            if let error = error as? ConfigStoreError { throw error }
            throw ConfigStoreError.badRequest("\(url.path): snapshot is corrupt: its database does not open as a Gossamer store (\(error))")
        }
        return info
    }

    /// The metadata line (without its newline): compact JSON with the fields in a fixed order.
    static func metadataLine(_ info: SnapshotInfo) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        func quoted(_ text: String) throws -> String { String(decoding: try encoder.encode(text), as: UTF8.self) }
        return "{\"sha256\":\(try quoted(info.sha256)),\"bytes\":\(info.bytes),\"node\":\(try quoted(info.node)),"
            + "\"revision\":\(info.revision),\"keys\":\(info.keys),\"created\":\(try quoted(info.created))}"
    }
}

/// File plumbing of snapshots: durable writes, atomic renames, streaming hash and copy.
enum SnapshotFiles {
    static let chunk = 1 << 20

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        for byte in digest {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Creates an empty file readable and writable by its owner only (fails if it exists).
    static func create(_ url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw ConfigStoreError(code: .storage, message: "cannot create \(url.path): \(String(cString: strerror(errno)))")
        }
        _ = close(fd)
    }

    /// Creates `url` (owner-only), lets `body` write it, then fsyncs it. Removes it if anything fails.
    static func writeDurably(_ url: URL, _ body: (FileHandle) throws -> Void) throws {
        try self.create(url)
        do {
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            try body(handle)
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(at: url)
            throw error
        }
    }

    /// SHA-256 (hex) and size of a file, read in chunks.
    static func sha256(of url: URL) throws -> (String, Int) {
        let input = try FileHandle(forReadingFrom: url)
        defer { try? input.close() }
        var hasher = SHA256()
        var size = 0
        while let data = try input.read(upToCount: self.chunk), !data.isEmpty {
            hasher.update(data: data)
            size += data.count
        }
        return (self.hex(hasher.finalize()), size)
    }

    /// Appends the whole file at `url` to `output`, in chunks.
    static func copy(from url: URL, to output: FileHandle) throws {
        let input = try FileHandle(forReadingFrom: url)
        defer { try? input.close() }
        while let data = try input.read(upToCount: self.chunk), !data.isEmpty {
            try output.write(contentsOf: data)
        }
    }

    /// Atomically replaces `target` with `source` (same directory).
    static func rename(_ source: URL, to target: URL) throws {
        #if canImport(Darwin)
        let result = Darwin.rename(source.path, target.path)
        #elseif canImport(Glibc)
        let result = Glibc.rename(source.path, target.path)
        #else
        let result = Musl.rename(source.path, target.path)
        #endif
        guard result == 0 else {
            throw ConfigStoreError(code: .storage, message: "cannot move the snapshot into \(target.path): \(String(cString: strerror(errno)))")
        }
    }

    /// fsyncs a directory so a rename or link in it survives power loss (best effort).
    static func syncDirectory(_ url: URL) {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    /// Removes a SQLite file and its side files.
    static func removeDatabase(at url: URL) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            try? FileManager.default.removeItem(atPath: url.path + suffix)
        }
    }
}
