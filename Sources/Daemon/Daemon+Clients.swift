import Foundation
import Workflow

// `clients`, `client_add`, `client_revoke` (admins).
extension Daemon {
    /// Caps a new client gets unless the request says otherwise.
    static let defaultClientMaxPriority = 0
    static let defaultClientMaxQueued = 16

    func listClients(caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "listing clients")
        let records = try storeCall { try store.clients() }
        return (["clients": .array(records.map(\.json))], [])
    }

    /// Issues a client: its own HMAC key and (under CURVE) key pair on the
    /// allow-list, a role and caps. The reply carries the client's whole
    /// connection file; the daemon keeps only what checks it.
    func addClient(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "issuing a client key")
        guard let name = content["name"]?.stringValue, ClientRecord.isValidName(name), name != ClientRecord.ownerName else {
            throw DaemonError(.invalidRequest, "expected 'name': 1–64 letters, digits, '.', '_' or '-' (not 'owner'), found "
                              + (content["name"]?.compact.prefix(70).description ?? "none"))
        }
        let roleText = try optionalString(content, "role") ?? ClientRole.user.rawValue
        guard let role = ClientRole(rawValue: roleText) else {
            throw DaemonError(.invalidRequest, "'role' must be one of \(ClientRole.allCases.map(\.rawValue).joined(separator: ", ")), found '\(roleText.prefix(40))'")
        }
        let maxPriority = try optionalInt(content, "max_priority") ?? (role == .admin ? Self.priorities.upperBound : Self.defaultClientMaxPriority)
        guard Self.priorities.contains(maxPriority) else {
            throw DaemonError(.invalidRequest, "'max_priority' must be in \(Self.priorities.lowerBound)...\(Self.priorities.upperBound)")
        }
        let maxQueued = try optionalInt(content, "max_queued") ?? Self.defaultClientMaxQueued
        guard maxQueued >= 0 else { throw DaemonError(.invalidRequest, "'max_queued' must be ≥ 0") }
        var pair: (publicKey: String, secretKey: String)?
        if connection.curveServerKey != nil {
            do { pair = try ZMQContext.curveKeyPair() } catch { throw DaemonError(.internal, "\(error)") }
        }
        let record = ClientRecord(name: name, key: ConnectionInfo.newKey(), curvePublicKey: pair?.publicKey, role: role,
                                  maxPriority: maxPriority, maxQueued: maxQueued)
        guard try storeCall({ try store.addClient(record) }) else {
            throw DaemonError(.invalidRequest, "a client named '\(name)' exists or was revoked; names are not reused")
        }
        clients.add(record)
        logger.notice("issued a client key", metadata: ["client": "\(name)", "role": "\(role.rawValue)", "by": "\(caller.name)"])
        let file = ConnectionInfo(requests: connection.requests, events: connection.events, key: record.key,
                                  eventKey: connection.eventKey, client: name, curveServerKey: connection.curveServerKey,
                                  curvePublicKey: pair?.publicKey, curveSecretKey: pair?.secretKey)
        return (["client": record.json, "connection": file.json], [])
    }

    func revokeClient(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "revoking a client key")
        guard let name = content["name"]?.stringValue else { throw DaemonError(.invalidRequest, "expected 'name': a client name") }
        guard name != ClientRecord.ownerName else {
            throw DaemonError(.invalidRequest, "the owner's key is the daemon's own: start it with --new-key to replace it")
        }
        guard try storeCall({ try store.revokeClient(name, now: Date()) }) else {
            throw DaemonError(.notFound, "no active client '\(name.prefix(64))'")
        }
        clients.revoke(name)
        // Under CURVE its open event connection would keep the subscriptions
        // it was granted: every subscriber is disconnected, and all but the
        // revoked one (refused by the ZAP handler) reconnect and subscribe again.
        if zap != nil {
            do { try publisher.reconnectAll() } catch {
                logger.error("revoking \(name): the event socket could not be made again: \(error)")
            }
        }
        logger.notice("revoked a client key", metadata: ["client": "\(name)", "by": "\(caller.name)"])
        return (["client": .string(name), "revoked": .bool(true)], [])
    }
}
