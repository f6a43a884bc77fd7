import Imaging
import XCTest

/// Asserts that `expression` throws an ``ImagingError`` matching `matches`
/// whose description contains each of `phrases` (case-insensitive), and
/// returns it.
@discardableResult
func assertImagingError<T>(
    _ expression: @autoclosure () throws -> T,
    _ expectation: String,
    matches: (ImagingError) -> Bool,
    mentioning phrases: [String],
    file: StaticString = #filePath, line: UInt = #line
) -> ImagingError? {
    do {
        _ = try expression()
        XCTFail("expected an error (\(expectation)), but the call succeeded", file: file, line: line)
        return nil
    } catch let error as ImagingError {
        XCTAssertTrue(matches(error), "expected \(expectation), got \(error)", file: file, line: line)
        for phrase in phrases {
            XCTAssertTrue(error.description.lowercased().contains(phrase.lowercased()),
                          "expected the message to mention \"\(phrase)\", got: \(error)", file: file, line: line)
        }
        return error
    } catch {
        XCTFail("expected an ImagingError (\(expectation)), got \(type(of: error)): \(error)", file: file, line: line)
        return nil
    }
}
