import XCTest
@testable import Tensors

final class StorageTests: XCTestCase {
    func testFreedLargeBuffersAreReusedBySizeWithinTheCap() {
        // The cache frees what it evicts with HostMemory.deallocate, which is free() below 8 MiB.
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

    func testLargeBuffersAreHugePageAlignedAndSmallOnesAreNot() throws {
        // 12 MiB rounds to whole 2 MiB pages with no waste: mapped, 2 MiB aligned.
        let big = 12 << 20
        XCTAssertEqual(HostMemory.usesHugePages(big), HostMemory.hugePagesEnabled)
        let p = try XCTUnwrap(HostMemory.allocate(bytes: big), "expected 12 MiB to be allocated")
        if HostMemory.usesHugePages(big) {
            XCTAssertEqual(Int(bitPattern: p) % HostMemory.hugePage, 0, "expected a 2 MiB aligned mapping")
        }
        let floats = p.bindMemory(to: Float.self, capacity: big / 4)
        floats[0] = 1; floats[big / 4 - 1] = 2   // both ends writable
        XCTAssertEqual(floats[0] + floats[big / 4 - 1], 3)
        HostMemory.deallocate(p, bytes: big)
        // 9 MiB would waste 1 MiB of its 10 (more than 1/16): left to posix_memalign.
        XCTAssertFalse(HostMemory.usesHugePages(9 << 20), "expected 9 MiB not to be rounded up to 10")
        XCTAssertFalse(HostMemory.usesHugePages(4 << 20), "expected buffers under 8 MiB to stay on the heap")
        let q = try XCTUnwrap(HostMemory.allocate(bytes: 9 << 20))
        XCTAssertEqual(Int(bitPattern: q) % 64, 0, "expected 64-byte alignment")
        HostMemory.deallocate(q, bytes: 9 << 20)
        // Tensors on such storage behave as any other.
        let t = Tensor.ones([3 << 20]) * 2
        XCTAssertEqual(t.scalars.reduce(0, +), Float(6 << 20))
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
