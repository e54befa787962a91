// PyTorch measured in the same run: `scripts/bench_torch.py --serve` started once, kept for the whole run, and
// asked for one timed repetition at a time, so that its repetitions alternate with Framework's (see the
// protocol in the script's docstring). Its import of torch and each workload's warm-up are outside the timings.
import CompareCore
import Foundation
import Framework
import Glibc

/// Why PyTorch is not measured: not installed, or the server would not start or answer.
struct PyTorchUnavailable: Error, CustomStringConvertible {
    var description: String
}

/// The PyTorch server process, its stdin and stdout.
final class PyTorchServer {
    /// What the server said about itself: torch version, threads, BLAS, CPU capability.
    let version: String
    let threads: Int
    let blas: String?
    let cpuCapability: String?
    let pythonVersion: String?
    private let pid: pid_t
    private let input: Int32, output: Int32
    private var buffer: [UInt8] = []
    private var closed = false

    /// Starts `python script --serve` and waits for its ready line.
    init(python: String, script: String) throws {
        guard FileManager.default.fileExists(atPath: script) else {
            throw PyTorchUnavailable(description: "\(script) not found (run bench from the package's folder, or pass --torch-script)")
        }
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw PyTorchUnavailable(description: "pipe: \(String(cString: strerror(errno)))")
        }
        // Not inherited by other children (the end-to-end rows' engine commands): the server must see the end
        // of its input when bench closes it.
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        for fd in toChild + fromChild { posix_spawn_file_actions_addclose(&actions, fd) }
        let arguments = [python, script, "--serve"]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, python, &actions, nil, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard status == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw PyTorchUnavailable(description: "cannot start \(python): \(String(cString: strerror(status)))")
        }
        self.pid = pid
        input = toChild[1]
        output = fromChild[0]
        // Until the ready line arrives the object is not complete: read it through a local reader.
        var reader = LineReader(fd: output)
        guard let line = reader.nextLine() else {
            close(input); close(output)
            var wait: Int32 = 0
            waitpid(pid, &wait, 0)
            throw PyTorchUnavailable(description: "\(python) \(script) --serve exited before it was ready")
        }
        buffer = reader.buffer
        let ready: JSONMembers
        do {
            ready = try JSONNode(try JSONValue.parse(Data(line.utf8))).members()
        } catch {
            close(input); close(output)
            throw PyTorchUnavailable(description: "bench_torch.py --serve: unexpected first line \(line.prefix(200))")
        }
        guard (try? ready["ready"]?.bool()) == true, let version = try? ready["torch"]?.string() else {
            let message = (try? ready["error"]?.string()) ?? line
            close(input); close(output)
            var wait: Int32 = 0
            waitpid(pid, &wait, 0)
            throw PyTorchUnavailable(description: message)
        }
        self.version = version
        threads = (try? ready["threads"]?.integer()) ?? 0
        blas = try? ready["blas"]?.string()
        cpuCapability = try? ready["cpuCapability"]?.string()
        pythonVersion = try? ready["python"]?.string()
    }

    deinit { stop() }

    /// Closes its stdin (the server ends at end of input) and waits for it.
    func stop() {
        guard !closed else { return }
        closed = true
        close(input)
        close(output)
        var wait: Int32 = 0
        while waitpid(pid, &wait, 0) < 0 && errno == EINTR {}
    }

    /// One request, one answer.
    func request(_ value: JSONValue) throws -> JSONMembers {
        guard !closed else { throw PyTorchUnavailable(description: "the PyTorch server has stopped") }
        let bytes = Array((value.text(pretty: false) + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(input, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw PyTorchUnavailable(description: "the PyTorch server stopped reading: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
        var reader = LineReader(fd: output, buffer: buffer)
        defer { buffer = reader.buffer }
        guard let line = reader.nextLine() else { throw PyTorchUnavailable(description: "the PyTorch server exited") }
        let answer = try JSONNode(try JSONValue.parse(Data(line.utf8))).members()
        if let error = try? answer["error"]?.string() { throw PyTorchUnavailable(description: "bench_torch.py: \(error)") }
        return answer
    }

    /// Sends the training set the workloads use (bench's own disk points).
    func send(data: Dataset) throws {
        _ = try request(jsonObject {
            $0["data"] = jsonObject {
                $0["inputs"] = .rows(data.inputs.rowArrays)
                $0["targets"] = .rows(data.targets.rowArrays)
            }
        })
    }

    /// One timed repetition of `workload`; `warmupSteps` untimed steps first.
    func repetition(_ workload: Workload, steps: Int, warmupSteps: Int) throws -> PyTorchSample {
        let answer = try request(jsonObject {
            $0["workload"] = .string(workload.key)
            $0["widths"] = .array(workload.widths.map { .integer($0) })
            $0["activations"] = .array(workload.activations.map { .string($0.rawValue) })
            $0["batchSize"] = .integer(workload.batchSize)
            $0["learningRate"] = .number(Workload.learningRate)
            $0["steps"] = .integer(steps)
            $0["warmupSteps"] = .integer(warmupSteps)
        })
        func number(_ key: String) throws -> Double { try answer.required(key, "missing").number() }
        return PyTorchSample(sample: Sample(samples: Int(try number("samples")), wall: try number("wall"), cpu: try number("cpu")),
                             loss: (try? answer["loss"]?.numberOrNonFinite()) ?? .nan,
                             maxRSSKiB: try? answer["maxRSSKiB"]?.integer())
    }

    /// "PyTorch 2.15.0 (Python 3.11.7), 1 thread, float64, BLAS mkl, CPU capability AVX512".
    var summary: String {
        "PyTorch \(version)" + (pythonVersion.map { " (Python \($0))" } ?? "") + ", \(threads) thread\(threads == 1 ? "" : "s"), float64"
            + (blas.map { ", BLAS \($0)" } ?? "") + (cpuCapability.map { ", CPU capability \($0)" } ?? "")
    }
}

struct PyTorchSample {
    var sample: Sample
    var loss: Double
    var maxRSSKiB: Int?
}

/// Lines from a file descriptor, read as they come.
struct LineReader {
    let fd: Int32
    var buffer: [UInt8] = []

    mutating func nextLine() -> String? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let count = read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return nil }
            buffer += chunk[0..<count]
        }
    }
}
