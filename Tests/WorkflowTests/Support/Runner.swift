import Foundation
import Workflow
import XCTest

/// Runs workflows against the test nodes with one log, cache and folder.
final class Runner {
    let log = RunLog()
    let registry: NodeRegistry
    let executor: Executor
    let folder: URL
    let paths: PathPolicy

    init(budgetBytes: Int = OutputCache.defaultBudget) throws {
        registry = TestNodes.registry(log: log)
        executor = Executor(cache: OutputCache(budgetBytes: budgetBytes))
        folder = try Fixtures.temporaryFolder()
        paths = PathPolicy(baseDirectory: folder, allowedReadDirectories: [folder], outputDirectory: folder)
    }

    func workflow(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) throws -> ValidatedWorkflow {
        try Fixtures.workflow(yaml, registry: registry, file: file, line: line)
    }

    /// Runs and returns the result; the log is cleared first, so it holds
    /// this run's nodes only.
    func run(_ workflow: ValidatedWorkflow, _ parameters: [String: ParameterValue] = [:],
             cancellation: CancellationToken = CancellationToken(),
             onEvent: @escaping @Sendable (ExecutionEvent) -> Void = { _ in }) throws -> ExecutionResult {
        log.reset()
        return try executor.run(try workflow.bind(parameters), paths: paths, cancellation: cancellation, onEvent: onEvent)
    }
}

/// Collects events from the executor's callback.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ExecutionEvent] = []

    func append(_ event: ExecutionEvent) { lock.withLock { items.append(event) } }
    var events: [ExecutionEvent] { lock.withLock { items } }
}
