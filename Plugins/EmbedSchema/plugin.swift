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
        // Every file is an input, so editing one rebuilds the generated source; SwiftPM runs the
        // plugin again at each build, so an added or removed file is seen too.
        var inputs: [URL] = []
        if let walk = FileManager.default.enumerator(at: schema, includingPropertiesForKeys: nil) {
            for case let url as URL in walk where url.pathExtension == "sql" { inputs.append(url) }
        }
        return [.buildCommand(displayName: "Embedding schema/ (\(inputs.count) files)",
                              executable: try context.tool(named: "EmbedSchemaTool").url,
                              arguments: [schema.path, output.path],
                              inputFiles: inputs, outputFiles: [output])]
    }
}
