import CPNG

/// Room for the shim's messages, which it truncates to fit.
let cpngMessageCapacity = 1024

/// The text of a NUL-terminated message buffer filled by the shim.
func cpngMessage(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

extension ImagingError {
    /// The error for a failed shim call, by its return code.
    init(cpngCode code: Int32, message: String, source: String) {
        switch code {
        case Int32(PILOT_PNG_ERR_EMPTY): self = .empty(source: source)
        case Int32(PILOT_PNG_ERR_SIGNATURE): self = .notPNG(source: source)
        case Int32(PILOT_PNG_ERR_TRUNCATED): self = .truncated(source: source, detail: message)
        case Int32(PILOT_PNG_ERR_LIMIT): self = .overLimit(source: source, detail: message)
        case Int32(PILOT_PNG_ERR_MEMORY): self = .outOfMemory(source: source, detail: message)
        case Int32(PILOT_PNG_ERR_ARGUMENT): self = .invalidImage(message)
        default: self = .malformed(source: source, detail: message)
        }
    }
}
