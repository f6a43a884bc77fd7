import Foundation
import SafeTensors

// Input: the bytes of a .safetensors file. The header must be refused with
// a SafeTensorsError or accepted; an accepted file's tensors must read.

/// One input; libFuzzer calls it through `runFuzzer` (main.swift).
func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    guard let file = try? SafeTensorsFile(data: bytes, source: "fuzz.safetensors") else { return 0 }
    _ = file.metadata.count
    for name in file.names.prefix(64) {
        guard let info = try? file.info(name), info.elementCount <= 1 << 16 else { continue }
        _ = try? file.floats(name)
    }
    return 0
}
