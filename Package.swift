// swift-tools-version:5.9
//
// MiniDL: a hand-written neural-network framework in pure Swift (`Framework`), an independent
// implementation of the same math on GSL's BLAS (`Reference`), and the `compare` tool that trains
// both from shared seeds and reports whether they agree.
//
// The BLAS behind `Reference` is chosen at build time by the environment variable MINIDL_BLAS:
//   unset or "gsl"  GSL's own CBLAS (libgslcblas), the default;
//   "openblas"      OpenBLAS (libopenblas-dev). Link order cannot put -lopenblas ahead of gsl.pc's
//                   -lgslcblas (SwiftPM emits pkg-config flags before a target's linkedLibrary), so in
//                   this mode CGSL skips pkg-config: the executable then needs libgsl and libopenblas
//                   only, and libgsl's cblas_* calls bind to OpenBLAS (GSL's documented way to use
//                   another CBLAS: link -lgsl with that library instead of -lgslcblas).
// `compare` prints which library actually served `cblas_dgemm` at run time.
import PackageDescription
import Foundation

let blas = ProcessInfo.processInfo.environment["MINIDL_BLAS"] ?? "gsl"
let referenceLinker: [LinkerSetting] = blas == "openblas" ? [.linkedLibrary("openblas")] : []
let gslPkgConfig: String? = blas == "openblas" ? nil : "gsl"  // gsl.pc's Libs add -lgslcblas

let package = Package(
    name: "MiniDL",
    products: [
        .library(name: "Framework", targets: ["Framework"]),
        .library(name: "Reference", targets: ["Reference"]),
        .executable(name: "compare", targets: ["Compare"]),
        .executable(name: "bench", targets: ["Bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Elementary functions (exp, log, tanh) for Framework without Foundation or a C import of our own.
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
    ],
    targets: [
        // MARK: The framework: pure Swift, imports nothing of ours and no C.
        .target(name: "Framework", dependencies: [.product(name: "RealModule", package: "swift-numerics")]),

        // MARK: The referee: the same math on GSL BLAS; never imports Framework.
        .systemLibrary(
            name: "CGSL",
            pkgConfig: gslPkgConfig,
            providers: [.apt(["libgsl-dev"])]
        ),
        .target(name: "Reference", dependencies: ["CGSL"], linkerSettings: referenceLinker),

        // MARK: compare: experiment files, runs of both engines, reports. The executable is a thin shell.
        .target(name: "CompareCore", dependencies: ["Framework", "Reference"]),
        .executableTarget(
            name: "Compare",
            dependencies: ["CompareCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // MARK: Fuzzing: `make fuzz` builds this with libFuzzer (-DFUZZING); a plain build replays inputs.
        .executableTarget(name: "FuzzExperiment", dependencies: ["CompareCore"]),

        // MARK: bench: training throughput of Framework beside Reference, and its product kernel beside GSL's dgemm.
        // Host-CPU flags are not set here (a dependency may not use unsafe flags): `make bench` passes them.
        .executableTarget(name: "Bench", dependencies: ["Framework", "Reference", "CGSL", "CAllocationCounter", "CompareCore",
                                                        .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          linkerSettings: referenceLinker),
        // A counting malloc for bench's "allocations per step" (see its README); linked into bench only.
        .target(name: "CAllocationCounter"),

        // MARK: Tests
        .target(name: "TestSupport", dependencies: ["Framework"], path: "Tests/TestSupport"),
        .testTarget(name: "FrameworkTests", dependencies: ["Framework", "TestSupport"]),
        .testTarget(name: "ReferenceTests", dependencies: ["Reference", "Framework", "TestSupport"]),
        // Engines/: Python engines with planted conventions, run by the tests (not Swift sources).
        .testTarget(name: "CompareTests", dependencies: ["CompareCore", "Framework", "Reference", "TestSupport"],
                    exclude: ["Engines"]),
    ]
)
