import Foundation
import SafeTensors

extension CLIPTokenizer {
    /// The name of OpenAI's BPE merges file, bundled with this module.
    public static let bundledMergesFile = "bpe_simple_vocab_16e6.txt.gz"

    /// Loads a tokenizer from a `vocab.json` and a `merges.txt` (the files of
    /// a diffusers `tokenizer/` folder); either may be gzipped (`.gz`).
    public convenience init(vocabularyPath: String, mergesPath: String) throws(TokenizerError) {
        let vocabulary = try BPEFiles.vocabulary(at: vocabularyPath)
        let merges = try BPEFiles.merges(at: mergesPath)
        try self.init(vocabulary: vocabulary, merges: merges, source: vocabularyPath)
    }

    /// Loads a tokenizer from a diffusers `tokenizer/` folder holding
    /// `vocab.json` and `merges.txt`.
    public convenience init(folder: String) throws(TokenizerError) {
        let base = URL(fileURLWithPath: folder)
        try self.init(vocabularyPath: base.appendingPathComponent("vocab.json").path,
                      mergesPath: base.appendingPathComponent("merges.txt").path)
    }

    /// Loads a tokenizer from OpenAI's merges file alone
    /// (`bpe_simple_vocab_16e6.txt`, plain or `.gz`), deriving the
    /// vocabulary from the merges as OpenAI's `SimpleTokenizer` does.
    public convenience init(mergesPath: String) throws(TokenizerError) {
        let merges = try BPEFiles.merges(at: mergesPath)
        try self.init(vocabulary: BPEFiles.derivedVocabulary(merges: merges), merges: merges, source: mergesPath)
    }

    /// The tokenizer made from the BPE file bundled with this module
    /// (``bundledMergesFile``, from open-clip-torch; see its README).
    /// Loaded once, then shared.
    public static func bundled() throws(TokenizerError) -> CLIPTokenizer {
        try bundledTokenizer.get()
    }

    private static let bundledTokenizer = Result { () throws(TokenizerError) -> CLIPTokenizer in
        let name = bundledMergesFile
        guard let url = Bundle.module.url(forResource: String(name.dropLast(3)), withExtension: "gz",
                                          subdirectory: "Resources")
        else { throw .missingResource(name: "Resources/\(name)") }
        // The program's own file: read wherever a job's reads are confined (and cached for every later job).
        do {
            return try ReadConfinement.confined(to: nil) { try CLIPTokenizer(mergesPath: url.path) }
        } catch let error as TokenizerError {
            throw error
        } catch {
            throw .unreadable(path: url.path, reason: "\(error)")
        }
    }
}
