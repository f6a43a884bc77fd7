import Foundation

/// A folder of template files, with the history `pilot templates save
/// --folder` keeps: the current text is `NAME.yaml`, every saved version is
/// also `.versions/NAME/N.yaml`. A file written by hand has no version until
/// it is saved; one edited by hand after its last save is reported without
/// a version (its text is not any saved version's).
public struct TemplateFolder: TemplateSource {
    public let directory: URL

    public init(_ directory: URL) {
        self.directory = directory.standardizedFileURL
    }

    /// Template names: 1–100 letters, digits, `_`, `.`, `-`, not starting with a dot.
    public static func isValidName(_ name: String) -> Bool {
        name.range(of: "^[A-Za-z0-9_.-]{1,100}$", options: .regularExpression) != nil && !name.hasPrefix(".")
    }

    /// The current file of `name`, if there is one.
    public func file(of name: String) -> URL? {
        guard Self.isValidName(name) else { return nil }
        for ext in ["yaml", "yml", "json"] {
            let url = directory.appendingPathComponent("\(name).\(ext)")
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }

    /// Names with a current file or a saved history (a removed template's
    /// versions can still be pinned).
    public var templateNames: [String] {
        let items = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let files = items.filter { ["yaml", "yml", "json"].contains(($0 as NSString).pathExtension) }
            .map { ($0 as NSString).deletingPathExtension }
        let saved = (try? FileManager.default.contentsOfDirectory(
            atPath: directory.appendingPathComponent(".versions", isDirectory: true).path)) ?? []
        return Array(Set((files + saved).filter(Self.isValidName))).sorted()
    }

    public func template(named name: String, version: Int?) throws(TemplateLookupError) -> TemplateText? {
        guard Self.isValidName(name) else { return nil }
        if let version {
            let url = versionFile(name, version)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            return TemplateText(name: name, version: version, file: url.path, text: try read(url), directory: directory.path)
        }
        guard let url = file(of: name) else { return nil }
        let text = try read(url)
        // Its version, when its text is the newest saved one's (only that file is read).
        let newest = versionNumbers(of: name).last
        let current = newest.flatMap { number in
            FileManager.default.contents(atPath: versionFile(name, number).path) == Data(text.utf8) ? number : nil
        }
        return TemplateText(name: name, version: current, file: url.path, text: text, directory: directory.path)
    }

    /// One saved version.
    public struct Version: Sendable, Equatable {
        public var version: Int
        public var time: Date
        public var sha256: String
    }

    /// Every saved version, oldest first.
    public func history(of name: String) -> [Version] {
        guard Self.isValidName(name) else { return [] }
        return versionNumbers(of: name).compactMap { number in
            let url = versionFile(name, number)
            guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
            let time = (try? FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? nil
            return Version(version: number, time: time ?? Date(timeIntervalSince1970: 0), sha256: Digest.sha256Hex(data))
        }
    }

    /// Writes `text` as the next version of `name` and as its current file
    /// (`NAME.yaml`, replacing a `.yml` or `.json` of that name). The caller
    /// validates first.
    @discardableResult
    public func save(_ name: String, text: String) throws(TemplateLookupError) -> TemplateText {
        guard Self.isValidName(name) else {
            throw TemplateLookupError("'\(name)' is not a template name (1 to 100 letters, digits, '_', '.' or '-', not starting with '.')")
        }
        let next = (versionNumbers(of: name).last ?? 0) + 1
        let target = directory.appendingPathComponent("\(name).yaml")
        do {
            try FileManager.default.createDirectory(at: versionsFolder(name), withIntermediateDirectories: true)
            guard !FileManager.default.fileExists(atPath: versionFile(name, next).path) else {
                throw TemplateLookupError("version \(next) of '\(name)' appeared while saving; save again")
            }
            try Data(text.utf8).write(to: versionFile(name, next), options: .atomic)
            if let old = file(of: name), old != target { try FileManager.default.removeItem(at: old) }
            try Data(text.utf8).write(to: target, options: .atomic)
        } catch {
            throw TemplateLookupError("cannot save template '\(name)' in \(directory.path): \(error.localizedDescription)")
        }
        return TemplateText(name: name, version: next, file: target.path, text: text, directory: directory.path)
    }

    /// Removes the current file of `name`; its saved versions stay.
    public func remove(_ name: String) throws(TemplateLookupError) {
        guard let url = file(of: name) else { throw TemplateLookupError("no template '\(name)' in \(directory.path)") }
        do { try FileManager.default.removeItem(at: url) } catch {
            throw TemplateLookupError("cannot remove \(url.path): \(error.localizedDescription)")
        }
    }

    /// The saved version numbers of `name`, ascending.
    private func versionNumbers(of name: String) -> [Int] {
        let items = (try? FileManager.default.contentsOfDirectory(atPath: versionsFolder(name).path)) ?? []
        return items.compactMap { item -> Int? in
            guard item.hasSuffix(".yaml") else { return nil }
            return Int(item.dropLast(5))
        }.sorted()
    }

    private func versionsFolder(_ name: String) -> URL {
        directory.appendingPathComponent(".versions", isDirectory: true).appendingPathComponent(name, isDirectory: true)
    }

    private func versionFile(_ name: String, _ version: Int) -> URL {
        versionsFolder(name).appendingPathComponent("\(version).yaml")
    }

    private func read(_ url: URL) throws(TemplateLookupError) -> String {
        guard let data = FileManager.default.contents(atPath: url.path), data.count <= WorkflowLimits.current.maxBytes,
              let text = String(data: data, encoding: .utf8) else {
            throw TemplateLookupError("cannot read \(url.path) as UTF-8 text of at most \(WorkflowLimits.current.maxBytes) bytes")
        }
        return text
    }
}
