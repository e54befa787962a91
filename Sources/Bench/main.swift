// bench: how fast Framework trains, beside Reference (GSL BLAS) and PyTorch measured in the same run, end to end
// as `compare` times it, and how fast its product kernel runs beside this CPU's peak and GSL's and OpenBLAS's
// dgemm. One thread, float64. `make bench` builds it for the host CPU; `bench --help` lists the options.
import ArgumentParser
import CompareCore
import Foundation
import Framework
import Glibc
import Reference

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Training and product-kernel throughput of Framework, beside Reference and PyTorch measured in the same run.",
        discussion: """
        Training step: samples per wall-second and per CPU-second of six workloads (an MLP on 1000 disk points, MSE, SGD lr 0.01), \
        each step exactly what Trainer.fit does per batch, in Framework, Reference and PyTorch (scripts/bench_torch.py --serve, \
        started once; its repetitions alternate with Framework's), with Framework's heap allocations per step and peak RSS.

        End to end: training plus per-epoch evaluation as `compare` times it (FrameworkEngine and examples/engines/torch_engine.py \
        through CommandEngine, alternating) for the seeds' network at batch 5 and 1000 and a 2-1024-1024-1024-2 Tanh network at \
        batch 128, with the speed goals (PyTorch ÷ Framework ≥ 100, 3, 1.2).

        Products: this core's measured double-precision peak, the three products of the 1024 network's training step as a \
        fraction of it, and n × n products beside gsl_blas_dgemm and OpenBLAS (when libopenblas.so.0 is installed).
        """)

    @Option(help: ArgumentHelp("Also write the results as JSON (atomically: a temporary file, then renamed).", valueName: "FILE"))
    var json: String?

    @Option(help: "Timed repetitions per measurement, reporting the median (at least 1).")
    var repetitions: Int = 3

    @Option(help: "Fraction of the default steps per repetition and of the end-to-end epochs (0.1 for a quick look).")
    var scale: Double = 1

    @Option(help: ArgumentHelp("Comma-separated workload keys (\(Workload.all.map(\.key).joined(separator: ", "))), for the "
                               + "training-step and the end-to-end rows; \"none\" for none.", valueName: "KEYS"))
    var only: String?

    @Flag(name: .customLong("no-reference"), help: "Skip Reference (its large networks take minutes on GSL's CBLAS).")
    var noReference = false

    @Flag(name: .customLong("no-gemm"), help: "Skip the peak measurement and the product-kernel comparisons.")
    var noGemm = false

    @Flag(name: .customLong("no-pytorch"), help: "Do not measure PyTorch (neither the training steps nor the end-to-end rows).")
    var noPyTorch = false

    @Flag(name: .customLong("no-end-to-end"), help: "Skip the end-to-end rows.")
    var noEndToEnd = false

    @Option(help: ArgumentHelp("The Python that runs PyTorch.", valueName: "PROGRAM"))
    var python: String = "python3"

    @Option(name: .customLong("torch-script"), help: ArgumentHelp("The PyTorch training-step server.", valueName: "FILE"))
    var torchScript: String = "scripts/bench_torch.py"

    @Option(name: .customLong("torch-engine"),
            help: ArgumentHelp("The PyTorch engine of the end-to-end rows, a command line (default: PROGRAM examples/engines/torch_engine.py, "
                               + "PROGRAM the --python).", valueName: "COMMAND"))
    var torchEngine: String?

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions \(repetitions): expected an integer ≥ 1") }
        guard scale > 0, scale.isFinite else { throw ValidationError("--scale \(scale): expected a number > 0") }
        let known = Set(Workload.all.map(\.key)).union(["none"])
        for key in selectedKeys ?? [] where !known.contains(key) {
            throw ValidationError("--only: unknown workload \(key); expected some of \(Workload.all.map(\.key).joined(separator: ", "))")
        }
        if let torchEngine {
            // The words `CommandEngine` will run, checked here so that the message speaks of this flag.
            do { _ = try ShellWords.command(torchEngine) } catch let error as ShellWords.SplitError {
                throw ValidationError("--torch-engine \"\(torchEngine)\": \(error.message); "
                                      + "expected a command line, e.g. \"python3 examples/engines/torch_engine.py\"")
            }
        }
    }

    var selectedKeys: [String]? { only.map { $0.split(separator: ",").map(String.init) } }

    func selected(_ key: String) -> Bool { selectedKeys?.contains(key) ?? true }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)  // progress lines as they come, also into a pipe
        let build = BuildInfo.current()
        let loadBefore = loadAverage()
        print(build.summary)

        // PyTorch: one server process for the training steps, its import and warm-up outside the timings.
        var server: PyTorchServer? = nil
        var pytorchSummary: String
        var pytorchStarted = false
        if noPyTorch {
            pytorchSummary = "not measured (--no-pytorch)"
        } else {
            do {
                let started = try PyTorchServer(python: python, script: torchScript)
                server = started
                pytorchSummary = started.summary + ", measured in this run (\(torchScript) --serve)"
            } catch {
                pytorchSummary = "not measured: \(error) (pip install torch; or --no-pytorch)"
            }
        }
        print("PyTorch: \(pytorchSummary)")
        print("load average before: \(loadBefore)")
        print()

        let data = Workload.data()
        if let running = server {
            do {
                try running.send(data: data)
                pytorchStarted = true
            } catch {
                pytorchSummary = "not measured: \(error)"
                print("PyTorch: \(pytorchSummary)")
                server = nil
            }
        }
        let workloads = Workload.all.filter { selected($0.key) }
        // Framework and PyTorch alternate, repetition by repetition, every workload in order of size, so that the
        // peak resident size read after each one (VmHWM: the process's peak so far) is that workload's; then
        // Reference, whose GSL matrices are larger.
        var rows: [WorkloadResult] = []
        for workload in workloads {
            let loop = FrameworkTrainingLoop(workload, data: data, scale: scale)
            loop.warmUp()
            var ours: [Sample] = [], theirs: [PyTorchSample] = []
            for repetition in 0..<repetitions {
                ours.append(loop.repetition())
                if let running = server {
                    do {
                        let steps = workload.scaledPyTorchSteps(scale)
                        theirs.append(try running.repetition(workload, steps: steps, warmupSteps: repetition == 0 ? max(2, steps / 10) : 0))
                    } catch {
                        pytorchSummary = "stopped: \(error)"
                        print("PyTorch: \(pytorchSummary)")
                        server = nil
                        theirs = []
                    }
                }
            }
            let pytorch = theirs.isEmpty ? nil : Throughput(theirs.map(\.sample), allocationsPerStep: .nan, lastLoss: theirs.last!.loss)
            let row = WorkloadResult(workload: workload,
                                     framework: Throughput(ours, allocationsPerStep: loop.allocationsPerStep, lastLoss: loop.lastLoss),
                                     frameworkPeakKiB: statusKilobytes("VmHWM"), reference: nil, pytorch: pytorch,
                                     pytorchPeakKiB: theirs.last?.maxRSSKiB)
            rows.append(row)
            print(row.line)
        }
        let pytorchMeasured = rows.contains { $0.pytorch != nil }
        server?.stop()  // not needed after the training steps (the end-to-end rows start their own engine processes)
        server = nil

        if !noReference {
            for index in rows.indices {
                do {
                    let reference = try referenceThroughput(rows[index].workload, data: data, repetitions: repetitions, scale: scale)
                    rows[index].reference = reference
                    print("\(rows[index].workload.key): Reference \(grouped(reference.median)) samples/s, "
                          + "Framework ÷ Reference \(ratio(rows[index].framework.median / reference.median))")
                } catch {
                    fputs("bench: Reference failed on \(rows[index].workload.key): \(error)\n", stderr)
                }
            }
        }

        // End to end, as `compare` times it.
        var endToEndResults: [EndToEndResult] = []
        var endToEndNote: String? = nil
        var endToEndFailures: [String] = []
        let cases = EndToEndCase.all(scale: scale).filter { selected($0.key) }
        let torchEngine = self.torchEngine ?? "\(python) examples/engines/torch_engine.py"
        if noEndToEnd {
            endToEndNote = "skipped (--no-end-to-end)"
        } else if cases.isEmpty {
            endToEndNote = nil
        } else if !pytorchStarted {
            endToEndNote = "skipped, PyTorch is needed: \(pytorchSummary)"
        } else {
            print()
            print("end to end (training + per-epoch evaluation; PyTorch: \(torchEngine))")
            do {
                let engine = try CommandEngine(specification: "pytorch=\(torchEngine)")
                for test in cases {
                    do {
                        let result = try endToEnd(test, torchEngine: engine, repetitions: repetitions)
                        endToEndResults.append(result)
                        print(result.line)
                    } catch {
                        fputs("bench: end to end \(test.key): \(error)\n", stderr)
                        endToEndFailures.append("\(test.key): \(error)")
                    }
                }
            } catch {
                fputs("bench: end to end: \(error)\n", stderr)
                endToEndFailures += cases.map { "\($0.key): \(error)" }
            }
        }

        var peak: PeakResult? = nil
        var shapeProducts: [ShapeProductResult] = []
        var products: [ProductResult] = []
        if !noGemm {
            print()
            peak = measurePeak(repetitions: max(repetitions, 5), seconds: max(0.05, 0.2 * scale))
            print(peak!.line)
            print("products of the 1024 network's training step at batch 128, GFLOP/s (2mnk flops), median of repetitions; "
                  + "fractions of peak per CPU-second")
            shapeProducts = trainingShapeProducts(repetitions: max(repetitions, 5), seconds: 0.2 * scale)
            for p in shapeProducts { print(p.line(peak: peak?.bestCPU)) }
            print(ProductResult.header)
            for n in [64, 256, 1024] {
                let result = productThroughput(n: n, repetitions: max(repetitions, 5), seconds: 0.2 * scale)
                products.append(result)
                print(result.line)
            }
        }

        let report = Report(build: build, pytorchSummary: pytorchSummary, pytorchMeasured: pytorchMeasured,
                            loadBefore: loadBefore, loadAfter: loadAverage(), workloads: rows, reference: !noReference,
                            endToEnd: endToEndResults, endToEndNote: endToEndNote, endToEndFailures: endToEndFailures,
                            peak: peak, shapeProducts: shapeProducts,
                            products: products, peakKiB: statusKilobytes("VmHWM"), repetitions: repetitions, scale: scale)
        print()
        print(report.table)
        if let path = json {
            do {
                try writeAtomically(Data(report.json.text().utf8), to: URL(fileURLWithPath: path))
            } catch {
                fputs("bench: \(path): \(error)\n", stderr)
                throw ExitCode(1)
            }
            print("wrote \(path)")
        }
        // A --torch-engine that fails is bad input: the other figures are printed, and the exit status says it.
        if !endToEndFailures.isEmpty {
            fputs("bench: \(endToEndFailures.count) end-to-end case(s) failed (listed above), so their rows are missing\n", stderr)
            throw ExitCode(2)
        }
    }
}

// A closed pipe to the PyTorch server is an error to report, not a death by signal; an interrupt kills the
// end-to-end engine's process group and removes its temporary files (the server shares bench's group).
signal(SIGPIPE, SIG_IGN)
CleanupRegistry.removeAll()  // creates both (empty) tables now, so that the handler never allocates
ChildProcesses.killAll()
for number in [SIGINT, SIGTERM, SIGHUP] {
    signal(number) { received in
        ChildProcesses.killAll()  // first, so that no engine writes into a folder while it is removed
        CleanupRegistry.removeAll()
        _exit(128 + received)
    }
}
// A bad flag is bad input: exit status 2, as for `compare` (ArgumentParser's own would be 64).
do {
    var command = try BenchCommand.parseAsRoot()
    try command.run()
} catch {
    if BenchCommand.exitCode(for: error) == .validationFailure {
        FileHandle.standardError.write(Data((BenchCommand.fullMessage(for: error) + "\n").utf8))
        exit(2)
    }
    BenchCommand.exit(withError: error)
}
