import Workflow

/// Where a daemon's template nodes find templates: a saved template (any
/// version of its history) before a file of the same name in the template
/// folders. A file template has no versions.
struct DaemonTemplates: TemplateSource {
    let store: any DaemonStore
    let folders: [TemplateFolder]

    func template(named name: String, version: Int?) throws(TemplateLookupError) -> TemplateText? {
        guard TemplateFolder.isValidName(name) else { return nil }
        let saved: JobStore.TemplateVersion?
        do { saved = try store.template(name: name, version: version) } catch {
            throw TemplateLookupError("the template store cannot be read: \(error)")
        }
        if let saved { return TemplateText(name: name, version: saved.version, file: "template \(name)", text: saved.text) }
        guard let folder = folders.first(where: { $0.file(of: name) != nil }) else { return nil }
        if let version {
            throw TemplateLookupError("template '\(name)' is a file (\(folder.directory.path)), with no saved version \(version); "
                                      + "remove 'version:' to use the file")
        }
        guard let file = try folder.template(named: name, version: nil) else { return nil }
        return TemplateText(name: name, version: nil, file: file.file, text: file.text, directory: file.directory)
    }

    var templateNames: [String] {
        let saved = (try? store.savedTemplates().map(\.name)) ?? []
        return Array(Set(saved + folders.flatMap(\.templateNames))).sorted()
    }
}
