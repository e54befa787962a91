import CGSL
import Framework
import Glibc

/// GFLOP/s (2n³ flops per product) of Framework's `Matrix.product` (C = A·B, packing buffers kept in a
/// `ProductWorkspace`), of `gsl_blas_dgemm` (NoTrans, NoTrans, α 1, β 0) and, when it is installed, of
/// OpenBLAS's `cblas_dgemm` on one thread, on the same n × n matrices. The three are timed in turn within each
/// repetition, so that a machine busy with other work slows them alike.
struct ProductResult {
    var n: Int
    var framework: [Double]
    /// `gsl_blas_dgemm` (through the CBLAS GSL is linked with).
    var gsl: [Double]
    /// OpenBLAS's `cblas_dgemm`, loaded with dlopen, when libopenblas.so.0 is installed.
    var openBLAS: [Double]?
    /// max |Framework − GSL| / max |GSL|: both must compute the same product.
    var difference: Double
    /// Heap allocations per Framework product after the first.
    var allocationsPerProduct: Double
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Times `body` (one product) in repetitions of about `seconds`; returns GFLOP/s of each call batch.
private final class Timer {
    let flops: Double
    let seconds: Double
    var iterations = 0
    var rates: [Double] = []
    /// Heap allocations during the timed loops, and the calls they ran.
    var allocations = 0, calls = 0

    init(flops: Double, seconds: Double) {
        self.flops = flops
        self.seconds = seconds
    }

    /// One repetition; the first call also calibrates the number of iterations.
    func repetition(_ body: () -> Void) {
        if iterations == 0 {
            body()
            let start = now()
            body()
            iterations = max(1, Int(seconds / max(now() - start, 1e-9)))
        }
        let before = allocationCount
        let start = now()
        for _ in 0..<iterations { body() }
        let seconds = now() - start
        allocations += allocationCount - before
        calls += iterations
        rates.append(flops * Double(iterations) / seconds / 1e9)
    }
}

func productThroughput(n: Int, repetitions: Int, seconds: Double) -> ProductResult {
    var g = Xoshiro256StarStar(seed: 7)
    var a = Matrix(rows: n, columns: n), b = Matrix(rows: n, columns: n)
    for k in a.elements.indices { a.elements[k] = g.uniform(-1, 1) }
    for k in b.elements.indices { b.elements[k] = g.uniform(-1, 1) }
    let flops = 2 * Double(n) * Double(n) * Double(n)

    let workspace = ProductWorkspace()
    var c = Matrix(rows: n, columns: n)
    let ga = gsl_matrix_alloc(n, n)!, gb = gsl_matrix_alloc(n, n)!, gc = gsl_matrix_alloc(n, n)!
    defer { gsl_matrix_free(ga); gsl_matrix_free(gb); gsl_matrix_free(gc) }
    for i in 0..<n {
        for j in 0..<n {
            gsl_matrix_set(ga, i, j, a[i, j])
            gsl_matrix_set(gb, i, j, b[i, j])
        }
    }
    let ap = UnsafeMutablePointer<Double>.allocate(capacity: n * n), bp = UnsafeMutablePointer<Double>.allocate(capacity: n * n)
    let cp = UnsafeMutablePointer<Double>.allocate(capacity: n * n)
    defer { ap.deallocate(); bp.deallocate(); cp.deallocate() }
    a.elements.withUnsafeBufferPointer { ap.update(from: $0.baseAddress!, count: n * n) }
    b.elements.withUnsafeBufferPointer { bp.update(from: $0.baseAddress!, count: n * n) }
    let size = Int32(n)

    let framework = Timer(flops: flops, seconds: seconds)
    let gsl = Timer(flops: flops, seconds: seconds)
    let open = Timer(flops: flops, seconds: seconds)
    for _ in 0..<repetitions {
        framework.repetition { Matrix.product(a, b, into: &c, workspace: workspace) }
        gsl.repetition { gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, 1, ga, gb, 0, gc) }
        if let dgemm = OpenBLAS.shared?.dgemm {
            open.repetition { dgemm(101, 111, 111, size, size, size, 1, ap, size, bp, size, 0, cp, size) }  // row-major
        }
    }
    var worst = 0.0, largest = 0.0
    for i in 0..<n {
        for j in 0..<n {
            let reference = gsl_matrix_get(gc, i, j)
            worst = max(worst, abs(c[i, j] - reference))
            largest = max(largest, abs(reference))
        }
    }
    return ProductResult(n: n, framework: framework.rates, gsl: gsl.rates,
                         openBLAS: OpenBLAS.shared == nil ? nil : open.rates, difference: worst / largest,
                         allocationsPerProduct: Double(framework.allocations) / Double(max(framework.calls, 1)))
}

/// The shared library that serves `cblas_dgemm` for GSL in this process (GSL's CBLAS, or OpenBLAS when the
/// package was built with MINIDL_BLAS=openblas): the file mapped at the symbol's address, from /proc/self/maps.
func blasLibrary() -> String {
    guard let symbol = dlsym(nil, "cblas_dgemm"), let maps = readTextFile("/proc/self/maps") else { return "unknown" }
    let address = UInt(bitPattern: symbol)
    for line in maps.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 6 else { continue }
        let range = fields[0].split(separator: "-")
        if range.count == 2, let low = UInt(range[0], radix: 16), let high = UInt(range[1], radix: 16),
           low <= address, address < high {
            return String(fields[5])
        }
    }
    return "unknown"
}

/// OpenBLAS loaded at run time (dlopen), beside whatever CBLAS GSL was linked with: its `cblas_dgemm` on one
/// thread, and the core type it chose (OPENBLAS_CORETYPE in the environment overrides its detection).
final class OpenBLAS {
    typealias Dgemm = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Double, UnsafePointer<Double>?, Int32,
                                      UnsafePointer<Double>?, Int32, Double, UnsafeMutablePointer<Double>?, Int32) -> Void
    let dgemm: Dgemm
    let coreName: String

    static let shared: OpenBLAS? = OpenBLAS()

    private init?() {
        guard let handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL),
              let symbol = dlsym(handle, "cblas_dgemm") else { return nil }
        dgemm = unsafeBitCast(symbol, to: Dgemm.self)
        if let setThreads = dlsym(handle, "openblas_set_num_threads") {
            unsafeBitCast(setThreads, to: (@convention(c) (Int32) -> Void).self)(1)
        }
        if let coreName = dlsym(handle, "openblas_get_corename"),
           let name = unsafeBitCast(coreName, to: (@convention(c) () -> UnsafeMutablePointer<CChar>?).self)() {
            self.coreName = String(cString: name)
        } else {
            self.coreName = "unknown"
        }
    }
}
