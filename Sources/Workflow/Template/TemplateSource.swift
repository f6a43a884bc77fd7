import Foundation

/// One version of a template as a template node finds it.
public struct TemplateText: Sendable, Equatable {
    public var name: String
    /// The saved version; nil for a file template (a file has no history).
    public var version: Int?
    /// SHA-256 of `text`'s UTF-8 bytes, lowercase hex.
    public var sha256: String
    /// How messages name it (a path, or `template NAME`).
    public var file: String
    public var text: String
    /// The folder of a file template: relative paths written in it resolve
    /// here, wherever it is used. Nil for a saved template (its paths
    /// resolve as the outer workflow's do).
    public var directory: String?

    public init(name: String, version: Int?, file: String, text: String, directory: String? = nil) {
        self.name = name
        self.version = version
        self.file = file
        self.text = text
        self.directory = directory
        sha256 = Digest.sha256Hex(Data(text.utf8))
    }

    /// `name@version`, or `name` for a file template.
    public var reference: String { version.map { "\(name)@\($0)" } ?? name }

    /// One text of one template: its reference and its hash.
    var identity: String { reference + "#" + sha256 }

    /// Which template it is, without its text: `{"name", "version", "sha256"}`
    /// (what a job's status and an image's `pilot:nested-templates` show).
    public var summary: JSONValue {
        var object: [String: JSONValue] = ["name": .string(name), "sha256": .string(sha256)]
        if let version { object["version"] = .int(version) }
        return .object(object)
    }

    /// For a job's record: enough to run the same template again.
    public var json: JSONValue {
        var object: [String: JSONValue] = ["name": .string(name), "sha256": .string(sha256), "file": .string(file),
                                           "text": .string(text)]
        if let version { object["version"] = .int(version) }
        if let directory { object["directory"] = .string(directory) }
        return .object(object)
    }

    public init?(json: JSONValue) {
        guard case let .object(object) = json, case let .string(name)? = object["name"],
              case let .string(file)? = object["file"], case let .string(text)? = object["text"] else { return nil }
        var version: Int?, directory: String?
        if case let .int(number)? = object["version"] { version = number }
        if case let .string(folder)? = object["directory"] { directory = folder }
        self.init(name: name, version: version, file: file, text: text, directory: directory)
    }
}

/// A template lookup failed for a reason other than absence (a version
/// asked of a file template, an unreadable file).
public struct TemplateLookupError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Where template nodes (`type: template:NAME`) find their templates: a
/// daemon's store and folders, a local folder, or the snapshot a job took
/// when it was submitted.
public protocol TemplateSource: Sendable {
    /// Template `name` at `version` (its latest when nil), or nil when there
    /// is no such template or version.
    func template(named name: String, version: Int?) throws(TemplateLookupError) -> TemplateText?
    /// Every name it knows, for "did you mean".
    var templateNames: [String] { get }
}

/// The templates a validation resolved, fixed: a job keeps this so that
/// it runs the very texts it was validated with, whatever is saved later.
public struct TemplateSnapshot: TemplateSource {
    public let texts: [TemplateText]

    public init(_ texts: [TemplateText]) {
        self.texts = texts
    }

    public func template(named name: String, version: Int?) throws(TemplateLookupError) -> TemplateText? {
        let candidates = texts.filter { $0.name == name }
        guard let version else {
            return candidates.max { ($0.version ?? -1) < ($1.version ?? -1) }
        }
        return candidates.first { $0.version == version }
    }

    public var templateNames: [String] { Array(Set(texts.map(\.name))).sorted() }

    /// As a job stores it.
    public var json: JSONValue { .array(texts.map(\.json)) }

    public init?(json: JSONValue) {
        guard case let .array(items) = json else { return nil }
        var texts: [TemplateText] = []
        for item in items {
            guard let text = TemplateText(json: item) else { return nil }
            texts.append(text)
        }
        self.init(texts)
    }
}

/// Several sources, asked in order: the first that has a name answers for it.
public struct LayeredTemplates: TemplateSource {
    public let layers: [any TemplateSource]

    public init(_ layers: [any TemplateSource]) {
        self.layers = layers
    }

    public func template(named name: String, version: Int?) throws(TemplateLookupError) -> TemplateText? {
        for layer in layers where layer.templateNames.contains(name) {
            return try layer.template(named: name, version: version)
        }
        return nil
    }

    public var templateNames: [String] { Array(Set(layers.flatMap(\.templateNames))).sorted() }
}
