import ArgumentParser
import Foundation
import Imaging
import SafeTensors

/// `pilot inspect FILE`: what a safetensors or PNG file holds, or why it
/// cannot be read.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a .safetensors file (tensors, dtypes, shapes, metadata) or a PNG (size, format, text chunks).")

    @Argument(help: "A .safetensors or .png file.")
    var path: String

    @Flag(name: .long, help: "List every tensor (safetensors) instead of a summary by prefix.")
    var all = false

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(path): no such file")
        }
        guard !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: path) else {
            throw ValidationError("\(path): not a readable file")
        }
        defer { try? handle.close() }
        let head = try handle.read(upToCount: 8) ?? Data()
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            try describePNG()
        } else {
            try describeSafeTensors()
        }
    }

    private func describePNG() throws {
        let png = try PNG.read(path: path)
        print("\(path): PNG \(png.width)×\(png.height), \(png.colorType) \(png.bitDepth)-bit"
              + "\(png.isInterlaced ? ", interlaced" : "")\(png.alpha != nil ? ", with alpha" : "")")
        for entry in png.text {
            let value = entry.value.count > 200 ? String(entry.value.prefix(200)) + "… (\(entry.value.count) characters)" : entry.value
            print("  \(entry.key): \(value)")
        }
        for w in png.warnings { print("  warning: \(w)") }
    }

    private func describeSafeTensors() throws {
        let file = try SafeTensorsFile(path: path)
        let infos = file.tensorInfos
        let params = infos.reduce(0) { $0 + $1.elementCount }
        let dtypes = Dictionary(grouping: infos, by: \.dtype).map { "\($0.key.rawValue)×\($0.value.count)" }.sorted()
        print("\(path): safetensors, \(infos.count) tensors, \(params) elements (\(dtypes.joined(separator: ", ")))")
        for (k, v) in file.metadata.sorted(by: { $0.key < $1.key }) {
            print("  metadata \(k): \(v.count > 120 ? String(v.prefix(120)) + "…" : v)")
        }
        if all {
            for t in infos { print("  \(t.name)  \(t.dtype.rawValue) \(t.shape)") }
            return
        }
        // Summary: tensors grouped by their first two name components.
        var groups: [String: (count: Int, elements: Int)] = [:]
        for t in infos {
            let key = t.name.split(separator: ".").prefix(2).joined(separator: ".")
            groups[key, default: (0, 0)].count += 1
            groups[key, default: (0, 0)].elements += t.elementCount
        }
        for (k, v) in groups.sorted(by: { $0.key < $1.key }) {
            print("  \(k).*  \(v.count) tensors, \(v.elements) elements")
        }
    }
}
