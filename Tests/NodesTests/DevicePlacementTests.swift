import Diffusion
import Foundation
import Imaging
import Nodes
import Tensors
import Workflow
import XCTest

/// Whole templates with the model's weights on a device. The device is
/// emulated (host memory, CPU kernels, tensors tagged as another device),
/// so the images must equal the CPU's exactly: any code path that reads a
/// device tensor as host memory, or mixes devices wrongly, shows here
/// without a GPU. The CUDA backend runs the same templates in
/// `pilot-bench gpu e2e` (scripts/gpu-check.sh).
final class DevicePlacementTests: XCTestCase {
    static let device = Device.cuda(6)

    override func tearDown() {
        WeightPlacement.current = .host
        Backends.register(nil, for: Self.device)
    }

    func testTemplatesWithWeightsOnADeviceMakeTheSameImagesAsOnTheHost() throws {
        let emulated = EmulatedDeviceBackend(Self.device)
        Backends.register(emulated, for: Self.device)
        for name in ["txt2img", "text-inpaint", "ipadapter-controlnet-inpaint"] {
            let url = Fixture.template(name)
            var images: [Image] = []
            for placement in [WeightPlacement.host, WeightPlacement(device: Self.device)] {
                WeightPlacement.current = placement
                let output = Fixture.temporaryFolder("placement")
                let runner = WorkflowRunner()
                _ = try runner.run(runner.validate(url), file: url, set: Fixture.quickSettings(name), outputDirectory: output)
                images.append(try PNG.read(path: output.appendingPathComponent("\(name).png").path).image)
            }
            XCTAssertEqual(images[0], images[1], "\(name): weights on \(Self.device) must give the host's image")
        }
        XCTAssertGreaterThan(emulated.copies.uploads, 100, "the weights must have been uploaded to the device")
    }
}
