import XCTest
@testable import Tensors

final class StorageTests: XCTestCase {
    func testFreedLargeBuffersAreReusedBySizeWithinTheCap() {
        // The cache frees what it evicts with free(): hand it malloc'd buffers.
        let cache = HostBufferCache(capacity: 3 << 20)
        let a = malloc(1 << 20)!, b = malloc(2 << 20)!
        XCTAssertTrue(cache.give(a, bytes: 1 << 20))
        XCTAssertTrue(cache.give(b, bytes: 2 << 20))
        XCTAssertNil(cache.take(bytes: 3 << 20), "expected no buffer of a size never given")
        XCTAssertEqual(cache.take(bytes: 2 << 20), b, "expected the 2 MiB buffer back for a 2 MiB request")
        XCTAssertEqual(cache.heldBytes, 1 << 20)
        // Over the cap, the least recently given buffers go (a, then b), freed by the cache.
        XCTAssertTrue(cache.give(b, bytes: 2 << 20))
        let c = malloc(2 << 20)!
        XCTAssertTrue(cache.give(c, bytes: 2 << 20))
        XCTAssertNil(cache.take(bytes: 1 << 20), "expected the oldest buffer evicted to stay within 3 MiB")
        XCTAssertEqual(cache.heldBytes, 2 << 20, "expected only the newest 2 MiB buffer kept")
        XCTAssertEqual(cache.take(bytes: 2 << 20), c)
        XCTAssertFalse(cache.give(c, bytes: 1024), "expected small buffers to be left to malloc")
        free(c)
    }

    func testTensorsBuiltOnReusedStorageHoldTheirOwnValues() {
        // A result computed into a reused buffer must not see the previous tensor's values.
        let n = 512
        let ones = Tensor.ones([n, n])
        var first: Tensor? = matmul(ones, ones)
        XCTAssertEqual(first!.scalars[0], Float(n))
        first = nil
        let twos = Tensor.ones([n, n]) * 2
        let second = matmul(twos, ones)
        XCTAssertEqual(second.scalars[0], Float(2 * n), "expected 2·n from the second product")
        XCTAssertEqual(Tensor.zeros([n, n]).scalars.max(), 0, "expected zeros() to clear a reused buffer")
    }
}
