import Foundation

/// The closing table: one row per figure and provider, with its target and its baseline.
struct Report {
    let sections: [Section]
    let largeMB: Int
    let smallKB: Int
    let uploads: Int
    let workers: Int

    struct Row {
        var provider: String
        var figure: String
        var best: Double
        var median: Double
        var target: String
        var baseline: Double?
        var baselineName: String
        var notes: String
    }

    func print() {
        var rows: [Row] = []
        for s in sections {
            // Throughput rows only where it is a target of the issue (the local provider); S3 is judged by its ratio.
            let throughputTarget = s.provider == "local" ? ">= 300" : ""
            let up = s.uploads.map(\.mbPerSecond), down = s.downloads.map(\.mbPerSecond)
            rows.append(Row(provider: s.provider, figure: "\(largeMB) MB upload, MB/s", best: up.filter { !$0.isNaN }.max() ?? .nan,
                            median: median(up), target: throughputTarget, baseline: s.writeBaseline,
                            baselineName: s.provider == "local" ? "dd write, fdatasync" : "boto3 put_object",
                            notes: failures(s.uploads)))
            rows.append(rssRow(s, "upload", s.uploads))
            rows.append(Row(provider: s.provider, figure: "\(largeMB) MB download, MB/s", best: down.filter { !$0.isNaN }.max() ?? .nan,
                            median: median(down), target: s.provider == "local" ? ">= 300" : "", baseline: s.readBaseline,
                            baselineName: s.provider == "local" ? "dd read" : "boto3 get_object", notes: failures(s.downloads)))
            rows.append(rssRow(s, "download", s.downloads))
            for run in s.small {
                rows.append(Row(provider: s.provider, figure: "\(smallKB) KB uploads/s, \(run.label)", best: run.perSecond, median: .nan,
                                target: s.provider == "local" ? ">= 1500" : "", baseline: s.putsBaseline,
                                baselineName: s.putsBaseline == nil ? "" : "boto3 put_object x32 threads",
                                notes: String(format: "p50 %.1f ms, p99 %.1f ms, %d errors of %d", run.p50, run.p99, run.errors, run.uploads)))
            }
        }
        let header = ["provider", "figure", "best", "median", "target", "baseline", "ours/baseline", "notes"]
        let table = [header] + rows.map { row in
            [row.provider, row.figure, Self.number(row.best), Self.number(row.median), row.target,
             row.baseline.map { Self.number($0) + " (\(row.baselineName))" } ?? "",
             row.baseline.map { String(format: "%.2fx", row.best / $0) } ?? "", row.notes]
        }
        let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
        Swift.print("")
        Swift.print("== storage figures: MB = 2^20 bytes; best and median of \(sections.first?.uploads.count ?? 0) large transfers each; "
                    + "\(uploads) small uploads from \(workers) concurrent workers per run; RSS growth = peak - before, sampled every 20 ms, best = smallest")
        for (i, line) in table.enumerated() {
            Swift.print(line.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
            if i == 0 { Swift.print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
    }

    /// RSS growth during the large transfers: the best is the smallest.
    func rssRow(_ s: Section, _ what: String, _ transfers: [Transfer]) -> Row {
        let growth = transfers.compactMap(\.rssGrowthMB)
        return Row(provider: s.provider, figure: "\(what) server RSS growth, MB", best: growth.min() ?? .nan, median: median(growth),
                   target: "<= 50", baseline: nil, baselineName: "",
                   notes: growth.max().map { String(format: "worst %.1f MB", $0) } ?? "no pid given")
    }

    func failures(_ transfers: [Transfer]) -> String {
        let failed = transfers.filter { $0.error != nil }.count
        return failed == 0 ? "" : "\(failed) of \(transfers.count) failed"
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "-" }
        return abs(value) >= 100 ? String(format: "%.0f", value) : String(format: "%.1f", value)
    }
}
