import Diffusion
import Foundation

// Input: any bytes, read as UTF-8 (invalid sequences replaced, as a prompt
// arriving over the wire would be). Tokenizing must give exactly 77 ids
// starting with the start token and holding the end token, for every text.

let tokenizer = try! CLIPTokenizer.bundled()


/// One input; libFuzzer calls it through `runFuzzer` (main.swift).
func fuzzTokenizer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let prompt = tokenizer.tokenize(text)
    guard prompt.ids.count == 77, prompt.ids.first == tokenizer.startTokenID,
          prompt.ids[prompt.endTokenIndex] == tokenizer.endTokenID else {
        fatalError("tokenize gave \(prompt.ids.count) ids, end token index \(prompt.endTokenIndex)")
    }
    _ = tokenizer.tokenize(text, padding: .id(0))
    return 0
}
