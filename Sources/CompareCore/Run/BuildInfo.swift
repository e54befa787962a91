import Foundation
import Framework
import Reference

/// What built this `compare` and where it runs: the tool's version, the git commit when it was built from a
/// checkout, the build flavour (debug or release, host-CPU flags or portable, the kernel variant), the BLAS.
public struct BuildInfo: Equatable, Sendable {
    /// The tool's version.
    public static let version = "0.4.0"

    public var version: String
    /// The commit of the checkout the binary was built in (read from `.git` beside the build folder), or nil.
    public var commit: String?
    /// "release" or "debug".
    public var configuration: String
    /// Whether it was built with `-target-cpu native` (the Makefile's `make run` and `make bench`).
    public var nativeCPU: Bool
    /// Framework's kernel variant, e.g. "MINIDL_AVX512".
    public var kernel: String
    /// The library that serves `cblas_dgemm` for Reference.
    public var blas: String

    public static let current: BuildInfo = {
        #if DEBUG
        let configuration = "debug"
        #else
        let configuration = "release"
        #endif
        #if MINIDL_NATIVE_CPU
        let native = true
        #else
        let native = false
        #endif
        return BuildInfo(version: version, commit: checkoutCommit(), configuration: configuration, nativeCPU: native,
                         kernel: KernelConfiguration.variant, blas: ReferenceEngine.blasLibrary)
    }()

    /// "release, -target-cpu native, MINIDL_AVX512 kernel".
    public var flavour: String {
        "\(configuration), \(nativeCPU ? "-target-cpu native" : "portable (no host-CPU flags)"), \(kernel) kernel"
    }

    /// For the Framework engine's description: "MINIDL_AVX512, release".
    public var frameworkLine: String { "\(kernel), \(configuration)\(nativeCPU ? ", native" : "")" }

    /// Whether this build is the fast one (release with host-CPU flags).
    public var isFast: Bool { configuration == "release" && nativeCPU }

    /// How much slower Framework trains in the other builds than in the release build for this CPU (`make run`):
    /// measured on the default experiment (one round, 20 epochs, Framework's seconds in the JSON report, two runs
    /// each, 2-core AMD EPYC Zen 4): native release 0.044–0.057 s, portable release 0.095–0.126 s, debug 40–44 s.
    /// The debug build runs the generic SIMD kernels unspecialised.
    static let slowdown = (debug: 800.0, portable: 2.2)

    /// For a build that is not the fast one, what that costs and how to build the fast one; nil for the fast one.
    public var slowBuildNote: String? {
        guard !isFast else { return nil }
        let factor = configuration == "debug" ? BuildInfo.slowdown.debug : BuildInfo.slowdown.portable
        return "note: this compare is a \(configuration)\(nativeCPU ? "" : ", portable") build, in which Framework trains about "
            + "\(formatNumber(factor))× slower than in the release build for this CPU (so do its seconds and ratios in the report); "
            + "`make run ARGS=\"…\"` builds that one and runs it"
    }

    /// "compare 0.4.0 (commit 1a2b3c4, release, -target-cpu native, MINIDL_AVX512 kernel; BLAS …)".
    public var description: String {
        "compare \(version) (\(commit.map { "commit \($0.prefix(12)), " } ?? "")\(flavour); BLAS \(blas))"
    }

    /// The commit HEAD names in the checkout above the running executable (`.build*/…/compare`), read from the
    /// `.git` folder's files (no git process), or nil when the binary is not in a checkout.
    static func checkoutCommit() -> String? {
        var folder = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let git = folder.appendingPathComponent(".git")
            if let head = try? String(contentsOf: git.appendingPathComponent("HEAD"), encoding: .utf8) {
                let line = head.trimmingCharacters(in: .whitespacesAndNewlines)
                guard line.hasPrefix("ref: ") else { return line.isEmpty ? nil : line }
                let ref = String(line.dropFirst(5))
                if let value = try? String(contentsOf: git.appendingPathComponent(ref), encoding: .utf8) {
                    return value.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                if let packed = try? String(contentsOf: git.appendingPathComponent("packed-refs"), encoding: .utf8) {
                    for entry in packed.split(separator: "\n") where entry.hasSuffix(" " + ref) {
                        return String(entry.prefix { $0 != " " })
                    }
                }
                return nil
            }
            folder.deleteLastPathComponent()
        }
        return nil
    }
}
