import Foundation
import PackagePlugin

/// Embeds `schema/` (at the package root) into the target as a generated Swift file, so the binary
/// carries its schema wherever it runs from: SwiftPM resources must live inside a target's folder
/// and are found at run time beside the binary, which a copied binary leaves behind.
@main
struct EmbedSchema: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let schema = context.package.directoryURL.appending(path: "schema")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedSchema.swift")
        // Every file is an input, so editing one runs the tool again. SwiftPM runs this plugin only when
        // it plans the build (Package.swift or a target's file list changed), not when a file is added
        // to schema/: the folders are inputs too (adding or removing a file changes theirs), and the
        // tool, given the files planned here, stops the build when the folder has others.
        var files: [URL] = [], folders: [URL] = [schema]
        if let walk = FileManager.default.enumerator(at: schema, includingPropertiesForKeys: [.isDirectoryKey]) {
            for case let url as URL in walk {
                if (try? url.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true {
                    folders.append(url)
                } else if url.pathExtension == "sql" {
                    files.append(url)
                }
            }
        }
        return [.buildCommand(displayName: "Embedding the schema folder (\(files.count) files)",
                              executable: try context.tool(named: "EmbedSchemaTool").url,
                              arguments: [schema.path, output.path] + files.map(\.path),
                              inputFiles: files + folders, outputFiles: [output])]
    }
}
