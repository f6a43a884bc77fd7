@testable import Diffusion
import XCTest

/// NFC as Python 3.11's `unicodedata.normalize("NFC", …)` computes it,
/// including the cases where Foundation's normaliser differs.
final class UnicodeNFCTests: XCTestCase {
    func nfc(_ scalars: [UInt32]) -> [UInt32] {
        UnicodeNFC.normalize(scalars.map { Unicode.Scalar($0)! }).map(\.value)
    }

    func testComposesBaseAndCombiningMark() {
        XCTAssertEqual(nfc([0x65, 0x301]), [0xE9], "expected e + acute to compose to é")
        XCTAssertEqual(nfc([0x61, 0x301, 0x323]), [0x1EA1, 0x301],
                       "expected the dot below (class 220) to move before the acute (230) and compose first")
    }

    func testLeavesTextBelowCombiningMarksUntouched() {
        let latin: [UInt32] = [0x63, 0x61, 0x66, 0xE9, 0x20, 0xC5]
        XCTAssertEqual(nfc(latin), latin, "expected precomposed Latin-1 text to be NFC already")
    }

    func testReordersAfterDecomposingTibetanVowelSigns() {
        // U+0F75 has class 0 but decomposes to U+0F71 (129) U+0F74 (132),
        // which must move before U+0358 (232).
        XCTAssertEqual(nfc([0x61, 0x358, 0xF75]), [0x61, 0xF71, 0xF74, 0x358],
                       "expected Python's order: the decomposed vowel signs before the class-232 mark")
    }

    func testComposesOnlyModernHangulJamo() {
        XCTAssertEqual(nfc([0x1100, 0x1161, 0x11A8]), [0xAC01], "expected ᄀ + ᅡ + ᆨ to compose to 각")
        XCTAssertEqual(nfc([0x1113, 0x1161]), [0x1113, 0x1161], "expected an old initial consonant not to compose")
        XCTAssertEqual(nfc([0x1100, 0x1176]), [0x1100, 0x1176], "expected an old medial vowel not to compose")
        XCTAssertEqual(nfc([0xAC00]), [0xAC00], "expected a precomposed syllable to stay composed")
    }

    func testSupplementaryCharactersDoNotComposeAsTheirLow16Bits() {
        XCTAssertEqual(nfc([0x1004C, 0x301]), [0x1004C, 0x301],
                       "expected Linear B U+1004C + acute to stay apart (not U+0139 Ĺ)")
    }

    func testSingletonsAndExclusionsDecomposeWithoutRecomposing() {
        XCTAssertEqual(nfc([0x212B]), [0xC5], "expected the angstrom sign to become Å")
        XCTAssertEqual(nfc([0xF900]), [0x8C48], "expected a CJK compatibility ideograph to become its unified form")
        XCTAssertEqual(nfc([0x958]), [0x915, 0x93C], "expected the excluded Devanagari qa to stay decomposed")
    }
}
