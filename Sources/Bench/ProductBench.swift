import CGSL
import Framework
import Glibc

/// GFLOP/s (2n³ flops per product) of Framework's `Matrix.product` (C = A·B, packing buffers kept in a
/// `ProductWorkspace`), of `gsl_blas_dgemm` (NoTrans, NoTrans, α 1, β 0) and, when it is installed, of
/// OpenBLAS's `cblas_dgemm` on one thread, on the same n × n matrices. The three are timed in turn within each
/// repetition, so that a machine busy with other work slows them alike.
struct ProductResult {
    var n: Int
    /// GFLOP/s per wall second of each repetition, and per CPU second.
    var framework: [Double]
    var frameworkCPU: [Double]
    /// `gsl_blas_dgemm` (through the CBLAS GSL is linked with).
    var gsl: [Double]
    /// OpenBLAS's `cblas_dgemm`, loaded with dlopen, when libopenblas.so.0 is installed.
    var openBLAS: [Double]?
    /// max |Framework − GSL| / max |GSL|: both must compute the same product.
    var difference: Double
    /// Heap allocations per Framework product after the first.
    var allocationsPerProduct: Double
}

/// The middle value (the mean of the two middle ones for an even count); NaN for none.
func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted(), middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Times `body` (one product) in repetitions of about `seconds`; returns GFLOP/s of each call batch, per wall
/// second and per CPU second of the thread (which other processes on a shared machine do not dilute).
private final class Timer {
    let flops: Double
    let seconds: Double
    var iterations = 0
    var rates: [Double] = [], cpuRates: [Double] = []
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
        let start = now(), cpuStart = threadCPUTime()
        for _ in 0..<iterations { body() }
        let seconds = now() - start, cpuSeconds = threadCPUTime() - cpuStart
        allocations += allocationCount - before
        calls += iterations
        rates.append(flops * Double(iterations) / seconds / 1e9)
        cpuRates.append(flops * Double(iterations) / max(cpuSeconds, 1e-9) / 1e9)
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
    return ProductResult(n: n, framework: framework.rates, frameworkCPU: framework.cpuRates, gsl: gsl.rates,
                         openBLAS: OpenBLAS.shared == nil ? nil : open.rates, difference: worst / largest,
                         allocationsPerProduct: Double(framework.allocations) / Double(max(framework.calls, 1)))
}

// MARK: - The products of a training step of the 1024 network

/// One of the three products of a Linear(1024 → 1024) layer's training step at batch 128, through the public
/// Matrix API as `Linear` runs it (a `ProductWorkspace` kept across calls; the weight packed on every call, as
/// in training where it changes every step), beside OpenBLAS's `cblas_dgemm` on the same shapes when installed.
struct ShapeProductResult {
    /// "forward", "dW", "dX".
    var name: String
    /// "Y = X·Wᵀ + b: X 128×1024, W 1024×1024".
    var formula: String
    var m: Int, n: Int, k: Int
    /// GFLOP/s (2mnk flops per call) of each repetition, per wall second and per CPU second.
    var framework: [Double]
    var frameworkCPU: [Double]
    var openBLAS: [Double]?
    var openBLASCPU: [Double]?
    /// max |Framework − GSL| / max |GSL| on one call from the same inputs.
    var difference: Double
    var allocationsPerProduct: Double
}

func trainingShapeProducts(batch: Int = 128, width: Int = 1024, repetitions: Int, seconds: Double) -> [ShapeProductResult] {
    var g = Xoshiro256StarStar(seed: 11)
    func random(_ rows: Int, _ columns: Int) -> Matrix {
        var m = Matrix(rows: rows, columns: columns)
        for k in m.elements.indices { m.elements[k] = g.uniform(-1, 1) }
        return m
    }
    let x = random(batch, width), w = random(width, width), bias = random(1, width), dY = random(batch, width)
    let flops = 2 * Double(batch) * Double(width) * Double(width)
    let workspace = ProductWorkspace()
    var y = Matrix.empty, dX = Matrix.empty, dW = Matrix(rows: width, columns: width)

    // Pointers for OpenBLAS, row-major, and GSL views for the one-call check.
    let b = Int32(batch), n = Int32(width)
    func copy(_ m: Matrix) -> UnsafeMutablePointer<Double> {
        let p = UnsafeMutablePointer<Double>.allocate(capacity: m.elements.count)
        m.elements.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: m.elements.count) }
        return p
    }
    let xp = copy(x), wp = copy(w), dYp = copy(dY)
    let out = UnsafeMutablePointer<Double>.allocate(capacity: width * width)
    out.initialize(repeating: 0, count: width * width)
    defer { xp.deallocate(); wp.deallocate(); dYp.deallocate(); out.deallocate() }

    /// max |framework − gsl| / max |gsl| for C = op(A)·op(B) (+ bias rows), computed once by gsl_blas_dgemm.
    func gslDifference(_ result: Matrix, _ a: Matrix, transposeA: Bool, _ bm: Matrix, transposeB: Bool, addBias: Bool) -> Double {
        func gslMatrix(_ m: Matrix) -> UnsafeMutablePointer<gsl_matrix> {
            let g = gsl_matrix_alloc(m.rows, m.columns)!
            for i in 0..<m.rows { for j in 0..<m.columns { gsl_matrix_set(g, i, j, m[i, j]) } }
            return g
        }
        let ga = gslMatrix(a), gb = gslMatrix(bm), gc = gsl_matrix_alloc(result.rows, result.columns)!
        defer { gsl_matrix_free(ga); gsl_matrix_free(gb); gsl_matrix_free(gc) }
        gsl_matrix_set_zero(gc)
        gsl_blas_dgemm(transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, 1, ga, gb, 0, gc)
        var worst = 0.0, largest = 0.0
        for i in 0..<result.rows {
            for j in 0..<result.columns {
                let reference = gsl_matrix_get(gc, i, j) + (addBias ? bias[0, j] : 0)
                worst = max(worst, abs(result[i, j] - reference))
                largest = max(largest, abs(reference))
            }
        }
        return worst / max(largest, .leastNormalMagnitude)
    }

    // One call of each from the inputs above, checked against GSL (dW from zero: the check's one accumulation).
    Matrix.affine(x, weightTransposed: w, bias: bias, into: &y, workspace: workspace)
    Matrix.accumulateTransposedProduct(dY, x, into: &dW, workspace: workspace)
    Matrix.product(dY, w, into: &dX, workspace: workspace)
    let differences = [gslDifference(y, x, transposeA: false, w, transposeB: true, addBias: true),
                       gslDifference(dW, dY, transposeA: true, x, transposeB: false, addBias: false),
                       gslDifference(dX, dY, transposeA: false, w, transposeB: false, addBias: false)]

    let frameworkTimers = (0..<3).map { _ in Timer(flops: flops, seconds: seconds) }
    let openTimers = (0..<3).map { _ in Timer(flops: flops, seconds: seconds) }
    let dgemm = OpenBLAS.shared?.dgemm
    for _ in 0..<repetitions {
        // dW keeps accumulating across calls (as it does over a batch's layers); its values stay small.
        frameworkTimers[0].repetition { Matrix.affine(x, weightTransposed: w, bias: bias, into: &y, workspace: workspace) }
        if let dgemm { openTimers[0].repetition { dgemm(101, 111, 112, b, n, n, 1, xp, n, wp, n, 0, out, n) } }
        frameworkTimers[1].repetition { Matrix.accumulateTransposedProduct(dY, x, into: &dW, workspace: workspace) }
        if let dgemm { openTimers[1].repetition { dgemm(101, 112, 111, n, n, b, 1, dYp, n, xp, n, 1, out, n) } }
        frameworkTimers[2].repetition { Matrix.product(dY, w, into: &dX, workspace: workspace) }
        if let dgemm { openTimers[2].repetition { dgemm(101, 111, 111, b, n, n, 1, dYp, n, wp, n, 0, out, n) } }
    }
    let shapes: [(String, String, Int, Int, Int)] = [
        ("forward", "Y = X·Wᵀ + b: X \(batch)×\(width) by W \(width)×\(width) transposed", batch, width, width),
        ("dW", "dW += dYᵀ·X: dYᵀ \(width)×\(batch) by X \(batch)×\(width)", width, width, batch),
        ("dX", "dX = dY·W: dY \(batch)×\(width) by W \(width)×\(width)", batch, width, width),
    ]
    return shapes.enumerated().map { i, shape in
        ShapeProductResult(name: shape.0, formula: shape.1, m: shape.2, n: shape.3, k: shape.4,
                           framework: frameworkTimers[i].rates, frameworkCPU: frameworkTimers[i].cpuRates,
                           openBLAS: dgemm == nil ? nil : openTimers[i].rates, openBLASCPU: dgemm == nil ? nil : openTimers[i].cpuRates,
                           difference: differences[i],
                           allocationsPerProduct: Double(frameworkTimers[i].allocations) / Double(max(frameworkTimers[i].calls, 1)))
    }
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
