import Foundation

/// The longest prompt TextEncode accepts, in UTF-8 bytes: checked when a
/// workflow is validated and when template inputs are bound, so a job with a
/// megabyte "prompt" is refused at submit instead of spending the worker's
/// time in the tokenizer (byte-pair merging is quadratic in a word's length).
/// 8 KiB is about ten times the text 77 tokens hold; `PILOT_MAX_PROMPT_BYTES`
/// changes it (read once, when the node catalog is built).
enum PromptLimit {
    static let maxBytes: Int = {
        if let text = ProcessInfo.processInfo.environment["PILOT_MAX_PROMPT_BYTES"], let value = Int(text), value > 0 {
            return value
        }
        return 8 << 10
    }()
}
