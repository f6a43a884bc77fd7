import CPostgres
import Foundation

/// An error from PostgreSQL or libpq: its SQLSTATE when the server sent one.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public let sqlState: String?
    public let message: String

    public var description: String {
        "PostgreSQL: " + message.trimmingCharacters(in: .whitespacesAndNewlines) + (sqlState.map { " (SQLSTATE \($0))" } ?? "")
    }
}

/// The rows of one statement, every value as text (NULL as nil).
struct PostgresRows {
    let columns: [String: Int]
    let rows: [[String?]]
    /// Rows the statement changed (UPDATE, INSERT, DELETE).
    let affected: Int

    func value(_ row: Int, _ column: String) -> String? {
        guard let index = columns[column] else { return nil }
        return rows[row][index]
    }
}

/// One libpq connection, used by one thread at a time (``PostgresPool``
/// hands them out). Statements take parameters as text (`$1`, `$2`, …), so
/// no value is ever spliced into SQL.
final class PostgresConnection {
    private let connection: OpaquePointer

    /// Connects with a libpq connection string (`postgresql://user@host/db`
    /// or `host=… dbname=…`); throws with libpq's reason.
    init(_ conninfo: String) throws {
        guard let connection = PQconnectdb(conninfo) else {
            throw PostgresError(sqlState: nil, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(sqlState: nil, message: "cannot connect: \(message)")
        }
        self.connection = connection
        // Notices (e.g. "relation already exists, skipping") are not errors: keep them off stderr.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
    }

    deinit { PQfinish(connection) }

    /// libpq's handle (LISTEN's socket and notifications).
    var raw: OpaquePointer { connection }

    /// Whether the connection still works (a server restart breaks it).
    var isHealthy: Bool { PQstatus(connection) == CONNECTION_OK }

    /// Runs one statement with text parameters.
    @discardableResult
    func query(_ sql: String, _ parameters: [String?] = []) throws -> PostgresRows {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let values = copies.map { UnsafePointer<CChar>($0) }
        guard let result = values.withUnsafeBufferPointer({ buffer in
            PQexecParams(connection, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, 0)
        }) else {
            throw PostgresError(sqlState: nil, message: String(cString: PQerrorMessage(connection)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            break
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw PostgresError(sqlState: state, message: String(cString: PQresultErrorMessage(result)))
        }
        let columnCount = Int(PQnfields(result)), rowCount = Int(PQntuples(result))
        var columns: [String: Int] = [:]
        for c in 0..<columnCount { columns[String(cString: PQfname(result, Int32(c)))] = c }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            rows.append((0..<columnCount).map { c in
                PQgetisnull(result, Int32(r), Int32(c)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(r), Int32(c)))
            })
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, rows: rows, affected: affected)
    }
}

extension PostgresConnection {
    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try query("BEGIN")
        do {
            let value = try body()
            try query("COMMIT")
            return value
        } catch {
            _ = try? query("ROLLBACK")
            throw error
        }
    }
}

/// Connections to one database, one per concurrent user, made on demand
/// and kept for reuse; a broken one (the server restarted) is dropped and
/// the call gets a fresh one.
final class PostgresPool: @unchecked Sendable {
    private let conninfo: String
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []

    init(_ conninfo: String) throws {
        self.conninfo = conninfo
        idle = [try PostgresConnection(conninfo)]
    }

    @discardableResult
    func with<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        var connection = lock.withLock { idle.popLast() }
        if connection?.isHealthy != true { connection = try PostgresConnection(conninfo) }
        let held = connection!
        do {
            let value = try body(held)
            lock.withLock { idle.append(held) }
            return value
        } catch {
            if held.isHealthy { lock.withLock { idle.append(held) } }
            throw error
        }
    }
}
