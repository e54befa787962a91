// What the benchmark measures besides time: heap allocations, peak memory and the CPU. Linux and glibc only.
import CAllocationCounter
import CompareCore
import Foundation
import Glibc

// MARK: - Counting heap allocations

/// Whether CAllocationCounter's counting allocator is the one in use (the executable must export it; `make bench`
/// links it so).
let allocationCounterWorks: Bool = {
    let before = minidl_allocation_count()
    let probe = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
    probe.deallocate()
    return minidl_allocation_count() > before
}()

/// Heap allocations since the process started (0 when `allocationCounterWorks` is false).
var allocationCount: Int { minidl_allocation_count() }

// MARK: - Time, memory, CPU

/// Seconds on the monotonic clock.
func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// CPU seconds this thread has run (excludes time other processes had the core).
func threadCPUTime() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Load averages over 1, 5, 15 minutes (/proc/loadavg).
func loadAverage() -> String {
    readTextFile("/proc/loadavg").map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "unknown"
}

/// A field of /proc/self/status in kB (`"VmHWM"`: peak resident set size; `"VmRSS"`: current), or nil.
func statusKilobytes(_ field: String) -> Int? {
    guard let text = readTextFile("/proc/self/status") else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
    }
    return nil
}

/// The CPU's model name and its flags among those the kernels care about, from /proc/cpuinfo.
func cpuDescription() -> (model: String, flags: [String]) {
    guard let text = readTextFile("/proc/cpuinfo") else { return ("unknown", []) }
    var model = "unknown", flags: Set<Substring> = []
    var family: Substring? = nil, number: Substring? = nil
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 1)
        guard parts.count == 2 else { continue }
        let key = parts[0].trimming(" \t"), value = parts[1].trimming(" \t")
        if key == "model name" && model == "unknown" { model = String(value) }
        if key == "cpu family" && family == nil { family = value }
        if key == "model" && number == nil { number = value }
        if key == "flags" && flags.isEmpty { flags = Set(value.split(separator: " ")) }
        if model != "unknown" && !flags.isEmpty && family != nil && number != nil { break }
    }
    // A virtual machine may name only the brand ("AMD EPYC"): the family and model say which generation.
    if let family, let number { model += " (family \(family), model \(number))" }
    return (model, ["sse2", "avx", "avx2", "fma", "avx512f"].filter { flags.contains(Substring($0)) })
}

/// The whole of a (small, text) file, or nil. Read to the end: /proc files report size 0.
func readTextFile(_ path: String) -> String? {
    guard let file = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? file.close() }
    guard let data = try? file.readToEnd() else { return nil }
    return String(decoding: data, as: UTF8.self)
}

extension Substring {
    func trimming(_ set: String) -> Substring {
        var s = self
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return s
    }
}

