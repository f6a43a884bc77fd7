import Diffusion
import Foundation
import Imaging
@testable import Nodes
import Tensors
import Workflow
import XCTest

/// Step previews of the sampling nodes (``PreviewRequest``).
final class PreviewNodeTests: XCTestCase {
    /// Collects events from the executor's threads.
    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [ExecutionEvent] = []
        func add(_ event: ExecutionEvent) { lock.withLock { items.append(event) } }
        var previews: [NodePreview] {
            lock.withLock { items.compactMap { if case let .preview(p) = $0 { p } else { nil } } }
        }
    }

    private func txt2img(preview: PreviewRequest?, scheduler: String = "euler") throws -> (latent: Tensor, previews: [NodePreview]) {
        let events = Events()
        let latent = try Fixture.runLatent("""
            \(Fixture.workflowHead())
              sample: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                       params: {steps: 5, width: 64, height: 64, scheduler: \(scheduler), seed: 4}}
            outputs:
              latent: sample.latent
            """, preview: preview, onEvent: { events.add($0) })
        return (latent, events.previews)
    }

    func testSampleSendsLatent2RGBPreviewsAtEveryNthAndTheLastStepWithoutChangingItsResult() throws {
        let plain = try txt2img(preview: nil)
        XCTAssertTrue(plain.previews.isEmpty, "expected no previews when none were asked for")
        let watched = try txt2img(preview: PreviewRequest(every: 2))
        XCTAssertEqual(watched.latent.scalars, plain.latent.scalars, "expected previews not to change the result")
        XCTAssertEqual(watched.previews.map(\.step), [2, 4, 5], "expected steps 2 and 4 (every 2) and 5 (the last)")
        for preview in watched.previews {
            XCTAssertEqual(preview.nodeID, "sample")
            XCTAssertEqual(preview.total, 5)
            XCTAssertEqual(preview.method, "latent2rgb")
            let image = try ImageFile.decode(preview.png, source: "preview")
            XCTAssertEqual([image.width, image.height], [8, 8], "expected one pixel per latent cell (64 px / 8)")
            XCTAssertEqual([preview.width, preview.height], [8, 8])
        }
    }

    func testTaesdPreviewsDecodeAtFullSizeBoundedByMaxSide() throws {
        let decoders = Fixture.temporaryFolder("decoders")
        defer { try? FileManager.default.removeItem(at: decoders) }
        try FileManager.default.copyItem(at: Fixture.repository.appendingPathComponent("Tests/Fixtures/sd/taesd"),
                                         to: decoders.appendingPathComponent("taesd"))
        let full = try txt2img(preview: PreviewRequest(every: 5, method: .taesd, decoderDirectory: decoders))
        XCTAssertEqual(full.previews.map(\.method), ["taesd"], "expected one taesd preview (the last step)")
        XCTAssertEqual(full.previews.map { [$0.width, $0.height] }, [[64, 64]], "expected TAESD's 8× upsampling")
        XCTAssertNil(full.previews.first?.note)
        let small = try txt2img(preview: PreviewRequest(every: 5, method: .taesd, maxSide: 16, decoderDirectory: decoders))
        XCTAssertEqual(small.previews.map { [$0.width, $0.height] }, [[16, 16]], "expected max_side 16 to bound the preview")
    }

    func testLatent2RGBIsTheFamilysLinearMap() throws {
        // One cell per channel pattern: z = e_k (k = 0…3), and zero.
        var values = [Float](repeating: 0, count: 4 * 5)
        for k in 0..<4 { values[k * 5 + k] = 1 }
        let latent = Tensor(shape: [1, 4, 1, 5], values: values)
        let rendered = try LatentPreview.render(latent, request: PreviewRequest(), sdxl: false)
        let image = try ImageFile.decode(rendered.png, source: "preview")
        for k in 0..<5 {
            let pixel = image.pixel(x: k, y: 0)
            for (c, value) in [pixel.red, pixel.green, pixel.blue].enumerated() {
                let expected = k < 4 ? (LatentPreview.sd.factors[k][c] + 1) / 2 : 0.5
                XCTAssertEqual(value, expected, accuracy: 0.5 / 255 + 1e-6, "cell \(k) channel \(c): expected (f[k][c] + 1) / 2")
            }
        }
        let sdxl = try ImageFile.decode(try LatentPreview.render(latent, request: PreviewRequest(), sdxl: true).png, source: "p")
        XCTAssertEqual(sdxl.pixel(x: 4, y: 0).red, (LatentPreview.sdxl.bias[0] + 1) / 2, accuracy: 0.5 / 255 + 1e-6,
                       "expected SDXL's offset on a zero latent")
    }
}
