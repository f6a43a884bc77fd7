import Workflow
import XCTest

/// The catalog the CLI prints and docs/nodes.md is generated from.
final class CatalogTests: XCTestCase {
    let registry = TestNodes.registry()

    func testJSONListsEveryNodeWithItsPorts() throws {
        let json = registry.catalogJSON
        guard case let .object(top) = json, case let .array(nodes)? = top["nodes"] else { return XCTFail("\(json)") }
        XCTAssertEqual(nodes.count, registry.typeNames.count)
        let paint = nodes.first { if case let .object(node) = $0 { return node["type"] == .string("Paint") }; return false }
        let expected = #"{"category":"test","doc":"Pretends to paint a picture under a mask.","inputs":[{"doc":"The picture.","kind":"connection","name":"image","required":true,"type":"Image"},{"doc":"Where.","kind":"connection","name":"mask","required":false,"type":"Mask"},{"choices":["fill","blur"],"default":"fill","doc":"How.","kind":"parameter","name":"mode","required":false,"type":"PaintMode"},{"default":0.5,"doc":"How much.","kind":"parameter","max":1.0,"min":0.0,"name":"strength","required":false,"type":"Float"},{"choices":["a","b"],"default":"a","doc":"A tag.","kind":"parameter","name":"label","required":false,"type":"String"},{"default":false,"doc":"Mirror it.","kind":"parameter","name":"flip","required":false,"type":"Bool"}],"isCacheable":true,"isOutput":false,"outputs":[{"doc":"The painted picture.","name":"image","type":"Image"},{"doc":"What was done.","name":"summary","type":"String"}],"type":"Paint","version":1}"#
        XCTAssertEqual(paint?.compact, expected)
        XCTAssertTrue(json.compact.contains(#""readsFile":true"#))
    }

    func testMarkdownHasASectionPerCategoryAndTablesPerNode() {
        let markdown = registry.catalogMarkdown
        XCTAssertTrue(markdown.hasPrefix("# Node catalog\n"))
        XCTAssertTrue(markdown.contains("## test\n"))
        XCTAssertTrue(markdown.contains("### SaveText\n\nVersion 1. Output node: always runs.\n"))
        XCTAssertTrue(markdown.contains("| `steps` | param | Int | `3` | in 1...100 | How many. |"), markdown)
        XCTAssertTrue(markdown.contains("| `mode` | param | PaintMode | `\"fill\"` | `fill`, `blur` | How. |"), markdown)
        XCTAssertTrue(markdown.contains("| `path` | param | Path | required | file or folder, fingerprinted | The file. |"))
        XCTAssertTrue(markdown.contains("| `sum` | Int | a + b. |"))
    }

    func testPortTypesHaveOneSpellingEach() {
        for type in PortType.named {
            XCTAssertEqual(PortType(spelling: type.spelling), type)
        }
        XCTAssertEqual(PortType(spelling: "Model"), .unet)
        XCTAssertNil(PortType(spelling: "image"))
        XCTAssertEqual(PortType.named.map(\.spelling).joined(separator: " "),
                       "Image Mask Latent Conditioning UNet VAE CLIP ControlNet ControlHint IPAdapter ImageEmbeds SamplerState T2IAdapter LoRA Stitch Int Float String Bool Path")
    }
}
