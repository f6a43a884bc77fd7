import Daemon
import Foundation
import Logging
import Nodes
import Workflow

/// `pilot-bench daemon`: requests per second for `ping` and `status`, and
/// submit→acknowledged latency (p50/p99), with 1 and 20 clients, against an
/// in-process daemon on loopback TCP. A raw ZeroMQ echo (DEALER→ROUTER, no
/// signing, JSON or store) on the same machine in the same run is the
/// baseline: the ratio is what the protocol and the job store cost.
enum DaemonBench {
    static let usage = """
        usage: pilot-bench daemon [--rounds N] [--requests N] [--queue CONNINFO]
          --rounds N    alternate the cases N times and report medians (default 3)
          --requests N  requests per client per case (default 500; submits: a fifth of it)
          --queue C     also submit to a front of this PostgreSQL queue (an empty database;
                        Benchmarks/queue.sh starts a throwaway cluster and passes it)
        """

    static func main(_ arguments: [String]) throws {
        var rounds = 3, perClient = 500
        var queue: String?
        var index = 0
        while index < arguments.count {
            let value = index + 1 < arguments.count ? Int(arguments[index + 1]) : nil
            switch arguments[index] {
            case "--rounds": rounds = try positive(value, "--rounds")
            case "--requests": perClient = try positive(value, "--requests")
            case "--queue":
                guard index + 1 < arguments.count else { throw DaemonError(.invalidRequest, "--queue needs a connection string\n\(usage)") }
                queue = arguments[index + 1]
            case "-h", "--help": print(usage); return
            default: throw DaemonError(.invalidRequest, "unknown argument \(arguments[index])\n\(usage)")
            }
            index += 2
        }
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("pilot-bench-daemon-\(getpid())")
        defer { try? FileManager.default.removeItem(at: folder) }
        var configuration = DaemonConfiguration(stateDirectory: folder.appendingPathComponent("state"),
                                                modelsDirectory: folder.appendingPathComponent("models"))
        configuration.requestEndpoint = "tcp://127.0.0.1:*"
        configuration.eventEndpoint = "tcp://127.0.0.1:*"
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let daemon = try Daemon(configuration: configuration, nodes: .standard, logger: logger)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { daemon.run(); done.signal() }
        // The same daemon as a front of a PostgreSQL queue: no worker of its
        // own (the SQLite daemon's worker thread runs its copy jobs meanwhile).
        var front: (daemon: Daemon, done: DispatchSemaphore)?
        if let queue {
            var shared = configuration
            shared.stateDirectory = folder.appendingPathComponent("front")
            shared.queue = queue
            let daemon = try Daemon(configuration: shared, nodes: .standard, logger: logger)
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread { daemon.run(); done.signal() }
            front = (daemon, done)
        }
        let echo = try EchoServer()
        let requests = perClient
        defer { echo.stop() }

        // One job to ask status of; a tiny PNG for submits (a copy job: LoadImage → SaveImage).
        let png = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Examples/mask.png"))
        let setup = try DaemonClient(connection: daemon.connection)
        let job = try setup.request("submit", submitContent(0), frames: [png]).content["job"]!.stringValue!

        typealias Case = (name: String, clients: Int, run: @Sendable (Int, Int) throws -> [Double])
        var cases: [Case] = [
            ("raw zmq echo", 1, { c, n in try echoLatencies(echo.endpoint, n) }),
            ("raw zmq echo", 20, { c, n in try echoLatencies(echo.endpoint, n) }),
            ("ping", 1, { c, n in try latencies(daemon.connection, n) { try $0.request("ping") } }),
            ("ping", 20, { c, n in try latencies(daemon.connection, n) { try $0.request("ping") } }),
            ("status", 1, { c, n in try latencies(daemon.connection, n) { try $0.request("status", ["job": .string(job)]) } }),
            ("status", 20, { c, n in try latencies(daemon.connection, n) { try $0.request("status", ["job": .string(job)]) } }),
            ("submit", 1, { c, n in try latencies(daemon.connection, max(1, n / 5)) { try $0.request("submit", submitContent(c), frames: [png]) } }),
            ("submit", 20, { c, n in try latencies(daemon.connection, max(1, n / 5)) { try $0.request("submit", submitContent(c), frames: [png]) } }),
        ]
        if let front {
            let connection = front.daemon.connection
            let shared: [Case] = [
                ("submit (pg)", 1, { c, n in try latencies(connection, max(1, n / 5)) { try $0.request("submit", submitContent(c), frames: [png]) } }),
                ("submit (pg)", 20, { c, n in try latencies(connection, max(1, n / 5)) { try $0.request("submit", submitContent(c), frames: [png]) } }),
            ]
            cases += shared
        }
        var rates: [Int: [Double]] = [:], p50: [Int: [Double]] = [:], p99: [Int: [Double]] = [:]
        for round in 1...rounds {
            for (index, item) in cases.enumerated() {
                let start = Stopwatch.now()
                let samples = try concurrently(item.clients) { client in try item.run(client, requests) }
                let seconds = Stopwatch.now() - start
                rates[index, default: []].append(Double(samples.count) / seconds)
                p50[index, default: []].append(percentile(samples, 0.5))
                p99[index, default: []].append(percentile(samples, 0.99))
                log("round \(round) \(item.name) ×\(item.clients): \(Int(Double(samples.count) / seconds)) req/s")
            }
        }
        daemon.stop()
        done.wait()
        front?.daemon.stop()
        front?.done.wait()

        print("daemon protocol on loopback TCP, medians of \(rounds) rounds (\(requests) requests per client; submits \(max(1, requests / 5)))")
        print("request        clients   req/s   p50 ms   p99 ms   vs raw zmq echo (req/s)")
        for (index, item) in cases.enumerated() {
            let baseline = median(rates[item.clients == 1 ? 0 : 1]!)
            let rate = median(rates[index]!)
            print(item.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                  + String(format: "%8d %7.0f %8.3f %8.3f   %.2f", item.clients, rate, median(p50[index]!), median(p99[index]!), rate / baseline))
        }
    }

    static func submitContent(_ client: Int) -> [String: JSONValue] {
        ["workflow": .string("""
            version: 1
            inputs: {image: {type: Path}}
            nodes:
              load: {type: LoadImage, params: {path: $image}}
              save: {type: SaveImage, inputs: {image: load.image}, params: {name: copy}}
            """), "inputs": .object(["image": .int(0)]), "client": .string("bench-\(client)")]
    }

    static func positive(_ value: Int?, _ option: String) throws -> Int {
        guard let value, value > 0 else { throw DaemonError(.invalidRequest, "\(option) expects a positive integer") }
        return value
    }

    /// Runs `body` on `count` threads at once (real threads: Dispatch would
    /// cap the width at the core count); returns all their samples.
    static func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) throws -> [Double]) throws -> [Double] {
        let lock = NSLock(), group = DispatchGroup()
        nonisolated(unsafe) var all: [Double] = []
        nonisolated(unsafe) var failure: Error?
        for index in 0..<count {
            group.enter()
            Thread.detachNewThread {
                do {
                    let samples = try body(index)
                    lock.withLock { all += samples }
                } catch {
                    lock.withLock { failure = error }
                }
                group.leave()
            }
        }
        group.wait()
        if let failure { throw failure }
        return all
    }

    static func latencies(_ connection: ConnectionInfo, _ count: Int, _ call: (DaemonClient) throws -> Void) throws -> [Double] {
        let client = try DaemonClient(connection: connection)
        try call(client)  // connect
        return try (0..<count).map { _ in
            let start = Stopwatch.now()
            try call(client)
            return (Stopwatch.now() - start) * 1e3
        }
    }

    static func echoLatencies(_ endpoint: String, _ count: Int) throws -> [Double] {
        let socket = try ZMQSocket(.dealer)
        try socket.connect(endpoint)
        let payload = [Data("pilot/1".utf8), Data(repeating: 0x61, count: 64), Data(repeating: 0x7b, count: 120), Data("{}".utf8)]
        try socket.send(payload)
        _ = try socket.receive()
        return try (0..<count).map { _ in
            let start = Stopwatch.now()
            try socket.send(payload)
            _ = try socket.receive()
            return (Stopwatch.now() - start) * 1e3
        }
    }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        let sorted = xs.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }
}

/// A ROUTER that sends every message straight back: the transport's own cost.
final class EchoServer: @unchecked Sendable {
    let endpoint: String
    private let socket: ZMQSocket
    private let lock = NSLock()
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init() throws {
        socket = try ZMQSocket(.router)
        try socket.bind("tcp://127.0.0.1:*")
        endpoint = socket.lastEndpoint
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                guard socket.waitReadable(timeout: 20) else { continue }
                while let frames = try? socket.receive(dontWait: true) { try? socket.send(frames) }
            }
            done.signal()
        }
    }

    func stop() {
        lock.withLock { running = false }
        done.wait()
    }
}
