import Crypto
import Foundation
import SafeTensors

/// What a model path holds, for `pilot models inspect`: the layout, the
/// detected family, each weights file with its dtypes, parameter count and
/// SHA-256, and whether it loads (or why not).
public struct ModelReport: CustomStringConvertible {
    public struct FileEntry {
        public let path: String
        public let tensors: Int
        public let parameters: Int
        public let dtypes: [String: Int]
        public let sha256: String
    }

    public var path: String
    public var layout: String
    public var family: ModelFamily?
    public var files: [FileEntry] = []
    public var loadError: String?
    public var components: [String] = []

    public var description: String {
        var lines = ["\(path): \(layout)\(family.map { ", \($0)" } ?? "")"]
        if !components.isEmpty { lines.append("  components: \(components.joined(separator: ", "))") }
        for f in files {
            let d = f.dtypes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            lines.append("  \(f.path)")
            lines.append("    \(f.tensors) tensors, \(f.parameters) parameters (\(d)), sha256 \(f.sha256)")
        }
        lines.append(loadError.map { "  cannot be used: \($0)" } ?? "  loads: yes")
        return lines.joined(separator: "\n")
    }
}

public enum ModelInspector {
    /// Describes `path`; with `load`, also loads the model to prove it is usable.
    public static func inspect(path: String, config: String? = nil, load: Bool = true) throws -> ModelReport {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError.missingFile(path: path, what: "model (no such file or folder)")
        }
        var report = ModelReport(path: path, layout: isDir.boolValue ? "diffusers folder" : "single-file checkpoint")
        if isDir.boolValue {
            let root = URL(fileURLWithPath: path)
            for component in ["text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae", "scheduler"] {
                let dir = root.appendingPathComponent(component)
                guard FileManager.default.fileExists(atPath: dir.path) else { continue }
                report.components.append(component)
                let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
                for name in names.sorted() where name.hasSuffix(".safetensors") {
                    report.files.append(try entry(dir.appendingPathComponent(name).path))
                }
            }
        } else {
            report.files.append(try entry(path))
            if let file = try? SingleFileCheckpoint(path: path) { report.family = file.family }
        }
        if load {
            do {
                let model = try StableDiffusionModel.load(path: path, config: config)
                report.family = model.family
            } catch {
                report.loadError = "\(error)"
            }
        }
        return report
    }

    static func entry(_ path: String) throws -> ModelReport.FileEntry {
        let file = try SafeTensorsFile(path: path)
        var dtypes: [String: Int] = [:]
        var params = 0
        for t in file.tensorInfos {
            dtypes[t.dtype.rawValue, default: 0] += 1
            params += t.elementCount
        }
        return .init(path: path, tensors: file.names.count, parameters: params, dtypes: dtypes, sha256: try sha256(path: path))
    }

    /// SHA-256 of a file, streamed in 8 MiB chunks.
    public static func sha256(path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ModelLoadError.missingFile(path: path, what: "readable file")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
