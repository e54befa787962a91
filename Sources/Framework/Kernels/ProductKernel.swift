// The matrix-product kernel behind `Matrix.affine`, `Matrix.accumulateTransposedProduct`, `Matrix.product` and
// the `Linear` layer.
//
// One routine computes every product a linear layer needs:
//
//     C (m, n) = start + op(A) (m, k) · op(B) (k, n)      start: 0, C itself, or a bias row
//
// where op(A) and op(B) are read through strides, so a transpose costs nothing but a different packing loop.
// It follows the BLIS scheme (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS
// Functionality", ACM TOMS 2015): B is copied block by block into panels `nr` columns wide, A (when it is
// large) into panels `mr` rows high, and a register-blocked micro-kernel multiplies one A panel by one B panel,
// keeping an `mr × nr` tile of C in SIMD registers for the whole depth of the block. Small operands are read
// in place instead of packed. A B that several products use unchanged (a layer's weights during an
// evaluation) can be packed once into `PackedPanels` and handed over already packed.
//
// The SIMD width and the tile shape are the variant's (KernelVariant.swift): the code below is written once,
// generic over the variant, and specialised for each.
//
// Summation order: within a depth block (`Blocking.depth` values of k) each C element is summed over k in
// increasing order in a register, then added to the start value (0, C, or the bias); the blocks follow one
// another in order. So an element's value depends on k, the depth blocking and the variant, never on m, on
// which rows are computed together, or on whether an operand was packed: a row of a batch comes out the same
// in a batch of 5 and in an evaluation chunk of 1000. A plain loop adds the same terms in another order, so
// results differ by rounding only (KernelTests bounds the difference by 10⁻¹³·Σ|terms|).

/// Cache blocking (tuned on a 2-core Xeon with AVX-512, 48 KiB L1d, 2 MiB L2 per core). On a Zen 5 (48 KiB L1d,
/// 1 MiB L2), `rows` 96, `columns` 240 or 336 and `depth` 128 or 192 measured the same as these within the
/// noise (the 1024 network's three products, `bench`, interleaved runs). `depth` alone changes results: it sets
/// where the sum over k is split.
enum Blocking {
    /// `kc`: the depth of a block; A and B panels hold this many values of k.
    static let depth = 256
    /// `mc`: rows of A packed together (`mc × kc`, 384 KiB, stays in L2).
    static let rows = 192
    /// `nc`: columns of B packed together (`kc × nc`, about 1 MiB, stays in L2); a multiple of 24.
    static let columns = 528
    /// A is packed only from this many elements per block (`m × k`); smaller, it is read in place.
    static let packAThreshold = 8192
    /// A B with contiguous rows of up to this many elements (`k × n`) is read in place rather than packed.
    static let inPlaceB = 4096
}

// MARK: - Operands and workspace

/// A read-only view of a matrix through strides: element (i, j) is `base[i·rowStride + j·columnStride]`.
/// A row-major `(r, c)` matrix is `(base, c, 1)`; its transpose is `(base, 1, c)`.
struct StridedMatrix {
    var base: UnsafePointer<Double>
    var rowStride: Int
    var columnStride: Int

    @inline(__always) func element(_ i: Int, _ j: Int) -> Double { base[i * rowStride + j * columnStride] }
    /// The view starting at element (i, j).
    @inline(__always) func offset(_ i: Int, _ j: Int) -> StridedMatrix {
        StridedMatrix(base: base + (i * rowStride + j * columnStride), rowStride: rowStride, columnStride: columnStride)
    }
    /// The transpose, without moving anything.
    var transposed: StridedMatrix { StridedMatrix(base: base, rowStride: columnStride, columnStride: rowStride) }
}

/// What C starts from before `op(A)·op(B)` is added.
enum ProductStart {
    /// C = A·B.
    case zero
    /// C += A·B.
    case accumulate
    /// C = bias + A·B with the same `(1, n)` bias row added to every row: `bias` points at n values.
    case bias(UnsafePointer<Double>)
}

/// An aligned buffer that grows to the largest size asked for and is reused below that.
struct GrowingBuffer {
    private(set) var pointer: UnsafeMutablePointer<Double>? = nil
    private(set) var capacity = 0

    /// At least `count` doubles; reallocated only when `count` exceeds what it has.
    mutating func reserve(_ count: Int) -> UnsafeMutablePointer<Double> {
        if count > capacity || pointer == nil {
            pointer.map(deallocateDoubles)
            capacity = max(count, 1)
            pointer = allocateDoubles(capacity)
        }
        return pointer!
    }

    func release() { pointer.map(deallocateDoubles) }
}

/// The packing buffers of the product kernel. Allocated on first use, grown when a larger product needs more,
/// reused across calls: a caller that keeps one (a layer, a benchmark loop) makes no heap allocation per
/// product. At most `Blocking.depth × Blocking.columns` doubles for B (1 MiB) and `Blocking.rows ×
/// Blocking.depth` for A (384 KiB), less for smaller products. Not thread-safe: one workspace per thread.
public final class ProductWorkspace {
    // (Unchecked exclusivity, as Parameter's properties: see there.)
    @exclusivity(unchecked) private var packedA = GrowingBuffer()
    @exclusivity(unchecked) private var packedB = GrowingBuffer()

    /// One tile of the widest variant, for tiles whose last vector reaches past C's columns.
    let edgeTile: UnsafeMutablePointer<Double>

    public init() {
        edgeTile = allocateDoubles(8 * 24)
    }

    deinit {
        packedA.release()
        packedB.release()
        deallocateDoubles(edgeTile)
    }

    /// A buffer of at least `count` doubles for packed A.
    func bufferA(_ count: Int) -> UnsafeMutablePointer<Double> { packedA.reserve(count) }

    /// A buffer of at least `count` doubles for packed B.
    func bufferB(_ count: Int) -> UnsafeMutablePointer<Double> { packedB.reserve(count) }
}

/// A whole `(k, n)` B packed once, block by block, exactly as `multiply` packs each block for itself: for each
/// block of `Blocking.columns` columns, for each block of `Blocking.depth` rows, its panels `nr` wide. A product
/// given it reads the panels instead of packing, with the same arithmetic.
final class PackedPanels {
    @exclusivity(unchecked) private var storage = GrowingBuffer()
    /// The shape packed, and the variant whose panel width was used.
    @exclusivity(unchecked) private(set) var k = 0, n = 0
    @exclusivity(unchecked) private(set) var variant: ObjectIdentifier? = nil

    deinit { storage.release() }

    /// Packs `b` `(k, n)` for variant `V`, reusing the storage when it is large enough.
    func pack<V: KernelVariant>(_: V.Type, _ b: StridedMatrix, k: Int, n: Int) {
        let width = V.Lane.scalarCount
        let kc = Blocking.depth, nc = Blocking.columns
        let base = storage.reserve(max(k * roundUp(n, width), 1))
        var offset = 0
        var jc = 0
        while jc < n {
            let nb = min(nc, n - jc)
            var pc = 0
            while pc < k {
                let kb = min(kc, k - pc)
                packPanelsB(V.self, b.offset(pc, jc), depth: kb, columns: nb, into: base + offset)
                offset += kb * roundUp(nb, width)
                pc += kb
            }
            jc += nb
        }
        self.k = k
        self.n = n
        variant = ObjectIdentifier(V.self)
    }

    /// The packed block that starts at row `pc`, column `jc` of B (both block boundaries).
    @inline(__always)
    func block(_ width: Int, pc: Int, jc: Int) -> UnsafePointer<Double> {
        // Blocks before column jc: jc·k·... each column block (nb wide, all of k) takes k·roundUp(nb, width).
        let before = jc * k   // jc is a multiple of Blocking.columns, itself a multiple of every lane width
        let nb = min(Blocking.columns, n - jc)
        return UnsafePointer(storage.pointer!) + (before + pc * roundUp(nb, width))
    }
}

/// Uninitialised room for `count` doubles, aligned to 64 bytes (a cache line, and a SIMD8 vector): a vector
/// load from a buffer with a malloc's 16-byte alignment would straddle two cache lines three times in four.
/// Free it with `deallocateDoubles`.
func allocateDoubles(_ count: Int) -> UnsafeMutablePointer<Double> {
    UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Double>.stride, alignment: 64)
        .bindMemory(to: Double.self, capacity: max(count, 1))
}

/// Frees what `allocateDoubles` gave.
func deallocateDoubles(_ p: UnsafeMutablePointer<Double>) {
    UnsafeMutableRawPointer(p).deallocate()
}

@inline(__always) func roundUp(_ x: Int, _ multiple: Int) -> Int { (x + multiple - 1) / multiple * multiple }

// MARK: - The product

/// `C = start + op(A)·op(B)`: `a` is `(m, k)`, `b` is `(k, n)` (or `packedB`, the same B packed by
/// `PackedPanels.pack` for this variant), C is `(m, n)` row-major with row stride `cRowStride` at `c`. See the
/// file comment for the method and the summation order.
func multiply<V: KernelVariant>(_: V.Type, m: Int, n: Int, k: Int, a: StridedMatrix, b: StridedMatrix,
                                packedB: PackedPanels? = nil,
                                c: UnsafeMutablePointer<Double>, cRowStride: Int, start: ProductStart,
                                workspace: ProductWorkspace) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        fillStart(m: m, n: n, c: c, cRowStride: cRowStride, start: start)
        return
    }
    precondition(packedB == nil || (packedB!.k == k && packedB!.n == n && packedB!.variant == ObjectIdentifier(V.self)),
                 "multiply: packed B does not match (\(k), \(n))")
    let width = V.Lane.scalarCount
    let mr = V.TileRows.value, nr = V.TileVectors.value * width
    let kc = Blocking.depth, mc = Blocking.rows, nc = Blocking.columns
    // B with contiguous rows is read in place when it is small (it stays in cache) or when its row stride is
    // not a multiple of 512 bytes (rows that far apart would compete for the same cache sets), except a last
    // panel whose width is not a whole number of vectors: a vector load there could reach past B's last row.
    let bInPlace = packedB == nil && b.columnStride == 1 && (k * n <= Blocking.inPlaceB || b.rowStride % 64 != 0)
    // A transposed B (columns contiguous, e.g. Wᵀ) used by a single block of A rows is packed panel by panel,
    // just before its tiles use it (reading a panel is then a few sequential streams, and it is still in L1).
    // Otherwise a whole `kc × nc` block of B is packed once, row by row, and used by every block of A rows.
    let onTheFly = packedB == nil && m <= mc && b.columnStride != 1
    let bufferB = packedB != nil ? nil
        : workspace.bufferB(min(kc, k) * (bInPlace || onTheFly ? nr : roundUp(min(nc, n), width)))
    // A is packed when it is read for more than two panels of B and is not small; else read in place.
    let packA = n > 2 * nr && min(mc, m) * min(kc, k) >= Blocking.packAThreshold
    let bufferA = packA ? workspace.bufferA(roundUp(min(mc, m), mr) * min(kc, k)) : nil
    let edgeTile = workspace.edgeTile

    var jc = 0
    while jc < n {
        let nb = min(nc, n - jc)
        let lastPanel = (nb - 1) / nr * nr   // first column of the last panel
        var pc = 0
        while pc < k {
            let kb = min(kc, k - pc)
            let bBlock = b.offset(pc, jc)
            // Where this block's packed panels are: the pre-packed ones, or the workspace's.
            let panels: UnsafePointer<Double>
            if let packedB {
                panels = packedB.block(width, pc: pc, jc: jc)
            } else {
                panels = UnsafePointer(bufferB!)
                if !bInPlace && !onTheFly {
                    packPanelsB(V.self, bBlock, depth: kb, columns: nb, into: bufferB!)
                } else if bInPlace && (nb - lastPanel) % width != 0 {
                    packPanelsB(V.self, bBlock.offset(0, lastPanel), depth: kb, columns: nb - lastPanel, into: bufferB!)
                }
            }
            let blockStart: ProductStart
            if pc == 0 { blockStart = start } else { blockStart = .accumulate }
            var ic = 0
            while ic < m {
                let mb = min(mc, m - ic)
                // The A rows of this block: packed (row stride 1, depth stride mr, panels mr·kb apart) or in place.
                let aRow: Int, aDepth: Int, aPanel: Int
                let aBase: UnsafePointer<Double>
                if let bufferA {
                    packPanelsA(V.self, a.offset(ic, pc), rows: mb, depth: kb, into: bufferA)
                    aBase = UnsafePointer(bufferA)
                    aRow = 1; aDepth = mr; aPanel = mr * kb
                } else {
                    let view = a.offset(ic, pc)
                    aBase = view.base
                    aRow = view.rowStride; aDepth = view.columnStride; aPanel = mr * view.rowStride
                }
                // One tile: rows ir…, columns jr… of this block.
                @inline(__always)
                func runBlockTile(_ ir: Int, _ jr: Int, _ panelB: UnsafePointer<Double>, _ bDepth: Int) {
                    let rows = min(mr, mb - ir), columns = min(nr, nb - jr)
                    let vectors = (columns + width - 1) / width
                    let panelA = aBase + (ir / mr) * aPanel
                    let tileC = c + ((ic + ir) * cRowStride + jc + jr)
                    let tileStart: ProductStart
                    if case let .bias(p) = blockStart { tileStart = .bias(p + (jc + jr)) } else { tileStart = blockStart }
                    if columns == vectors * width {
                        runTile(V.self, rows: rows, vectors: vectors, depth: kb, a: panelA, aRow: aRow, aDepth: aDepth,
                                b: panelB, bDepth: bDepth, c: tileC, cRowStride: cRowStride, start: tileStart)
                    } else {
                        // The last vector reaches past C: the whole vectors go straight to C, the last one is
                        // computed aside and merged.
                        if vectors > 1 {
                            runTile(V.self, rows: rows, vectors: vectors - 1, depth: kb, a: panelA, aRow: aRow, aDepth: aDepth,
                                    b: panelB, bDepth: bDepth, c: tileC, cRowStride: cRowStride, start: tileStart)
                        }
                        let last = (vectors - 1) * width
                        let lastStart: ProductStart
                        if case let .bias(p) = tileStart { lastStart = .bias(p + last) } else { lastStart = tileStart }
                        runTile(V.self, rows: rows, vectors: 1, depth: kb, a: panelA, aRow: aRow, aDepth: aDepth,
                                b: panelB + last, bDepth: bDepth, c: edgeTile, cRowStride: width, start: .zero)
                        mergeEdgeTile(V.self, edgeTile, tileRowStride: width, rows: rows, columns: columns - last,
                                      c: tileC + last, cRowStride: cRowStride, start: lastStart)
                    }
                }
                // Where the B panel at column jr is, and its depth stride.
                @inline(__always)
                func panel(_ jr: Int) -> (UnsafePointer<Double>, Int) {
                    let columns = min(nr, nb - jr)
                    let padded = roundUp(columns, width)
                    if bInPlace {
                        return columns == padded ? (bBlock.base + jr, bBlock.rowStride) : (panels, padded)
                    }
                    return (panels + (jr / nr) * kb * nr, padded)
                }
                if onTheFly {
                    // Panel by panel: pack B's panel, then run it against every row tile (it stays in L1).
                    var jr = 0
                    while jr < nb {
                        let columns = min(nr, nb - jr)
                        packPanelsB(V.self, bBlock.offset(0, jr), depth: kb, columns: columns, into: bufferB!)
                        var ir = 0
                        while ir < mb {
                            runBlockTile(ir, jr, panels, roundUp(columns, width))
                            ir += mr
                        }
                        jr += nr
                    }
                } else {
                    // Row tile by row tile: its A panel stays in L1 while B's packed panels stream from L2.
                    var ir = 0
                    while ir < mb {
                        var jr = 0
                        while jr < nb {
                            let (panelB, bDepth) = panel(jr)
                            runBlockTile(ir, jr, panelB, bDepth)
                            jr += nr
                        }
                        ir += mr
                    }
                }
                ic += mb
            }
            pc += kb
        }
        jc += nb
    }
}

/// C = the start value, for an empty depth.
private func fillStart(m: Int, n: Int, c: UnsafeMutablePointer<Double>, cRowStride: Int, start: ProductStart) {
    for i in 0..<m {
        let row = c + i * cRowStride
        switch start {
        case .zero: row.update(repeating: 0, count: n)
        case .accumulate: break
        case let .bias(p): row.update(from: p, count: n)
        }
    }
}

// MARK: - Packing

/// Copies the `(depth, columns)` block of B into panels `nr` columns wide (the last one narrower, rounded up to
/// whole vectors and zero-filled): panel after panel, each `depth` rows of its width, contiguous.
func packPanelsB<V: KernelVariant>(_: V.Type, _ b: StridedMatrix, depth: Int, columns: Int,
                                   into out: UnsafeMutablePointer<Double>) {
    typealias Lane = V.Lane
    let width = Lane.scalarCount, nr = V.TileVectors.value * width
    if b.columnStride == 1 {
        // Rows of B are contiguous: read B row by row (a sequential stream) and deal each row's vectors out to
        // the panels; the last panel's remainder and padding element by element.
        let fullPanels = columns / nr
        let lastWidth = columns - fullPanels * nr, lastPadded = roundUp(lastWidth, width)
        let panelSize = depth * nr
        for kk in 0..<depth {
            let src = b.base + kk * b.rowStride
            for panel in 0..<fullPanels {
                let from = src + panel &* nr, to = out + (panel &* panelSize &+ kk &* nr)
                for v in 0..<V.TileVectors.value { storeLane(loadLane(from + v &* width, as: Lane.self), to + v &* width) }
            }
            if lastWidth > 0 {
                let from = src + fullPanels &* nr, to = out + (fullPanels &* panelSize &+ kk &* lastPadded)
                var j = 0
                while j + width <= lastWidth { storeLane(loadLane(from + j, as: Lane.self), to + j); j &+= width }
                if j < lastWidth {
                    var v = Lane()  // the remainder, then zeros to the vector's end
                    for r in 0..<(lastWidth &- j) { v[r] = from[j &+ r] }
                    storeLane(v, to + j)
                }
            }
        }
        return
    }
    var dst = out
    var j0 = 0
    while j0 < columns {
        let w = min(nr, columns - j0)
        let pw = roundUp(w, width)
        if b.rowStride == 1 {
            // Columns of B are contiguous (B is a transpose, e.g. Wᵀ): transpose square blocks of a lane's width
            // in registers; the edges (fewer columns than a lane, a depth remainder) element by element.
            let cs = b.columnStride
            let fullColumns = w / width * width, fullDepth = depth / width * width
            var jj = 0
            while jj < fullColumns {
                let src = b.base + (j0 + jj) * cs
                var kk = 0
                while kk < fullDepth {
                    var block = InlineArray<8, Lane>(repeating: Lane())
                    for r in 0..<width { block[r] = loadLane(src + (r &* cs &+ kk)) }
                    V.transposeSquare(&block)
                    for r in 0..<width { storeLane(block[r], dst + ((kk &+ r) &* pw &+ jj)) }
                    kk &+= width
                }
                while kk < depth {
                    for r in 0..<width { dst[kk &* pw &+ jj &+ r] = src[r &* cs &+ kk] }
                    kk &+= 1
                }
                jj &+= width
            }
            if fullColumns < pw {
                // The last, partial vector of each packed row: its columns, then zeros.
                let src = b.base + (j0 + fullColumns) * cs
                for kk in 0..<depth {
                    var v = Lane()
                    for r in 0..<(w &- fullColumns) { v[r] = src[r &* cs &+ kk] }
                    storeLane(v, dst + (kk &* pw &+ fullColumns))
                }
            }
        } else {
            for kk in 0..<depth {
                let row = dst + kk * pw
                for j in 0..<w { row[j] = b.element(kk, j0 + j) }
                for j in w..<pw { row[j] = 0 }
            }
        }
        dst += depth * pw
        j0 += nr
    }
}

/// Copies the `(rows, depth)` block of A into panels `mr` rows high: for each k, the panel's `mr` values
/// (a short last panel leaves its missing rows unwritten; the kernel never reads them).
private func packPanelsA<V: KernelVariant>(_: V.Type, _ a: StridedMatrix, rows: Int, depth: Int,
                                           into out: UnsafeMutablePointer<Double>) {
    typealias Lane = V.Lane
    let width = Lane.scalarCount, mr = V.TileRows.value
    if a.rowStride == 1 {
        // Columns of A are contiguous (A is a transpose, e.g. dYᵀ): read A's columns one after the other (each a
        // sequential stream of `rows` values) and deal them out to the panels. Reading panel by panel instead
        // took `mr` values from every column in turn, columns a layer's width apart (8 KiB at 1024, so that all
        // of them map to one set of a 32 KiB 8-way L1): perf put that packing at 9 % of the 1024 network's
        // training step, and this one at 2.8 %.
        let cs = a.columnStride
        let fullPanels = rows / mr, lastRows = rows - fullPanels * mr
        let panelSize = mr * depth
        for kk in 0..<depth {
            let src = a.base + kk &* cs
            for panel in 0..<fullPanels {
                let from = src + panel &* mr, to = out + (panel &* panelSize &+ kk &* mr)
                for v in 0..<(mr / width) { storeLane(loadLane(from + v &* width, as: Lane.self), to + v &* width) }
            }
            if lastRows > 0 {
                let from = src + fullPanels &* mr, to = out + (fullPanels &* panelSize &+ kk &* mr)
                for ii in 0..<lastRows { to[ii] = from[ii] }
            }
        }
        return
    }
    var dst = out
    var i0 = 0
    while i0 < rows {
        let h = min(mr, rows - i0)
        if a.columnStride == 1 {
            // Rows of A are contiguous: transpose square blocks of a lane's width in registers.
            let rs = a.rowStride
            var ii = 0
            while ii + width <= h {
                let src = a.base + (i0 + ii) * rs
                var kk = 0
                while kk + width <= depth {
                    var block = InlineArray<8, Lane>(repeating: Lane())
                    for r in 0..<width { block[r] = loadLane(src + (r &* rs &+ kk)) }
                    V.transposeSquare(&block)
                    for r in 0..<width { storeLane(block[r], dst + ((kk &+ r) &* mr &+ ii)) }
                    kk += width
                }
                for k2 in kk..<depth {
                    for r in 0..<width { dst[k2 &* mr &+ ii &+ r] = src[r &* rs &+ k2] }
                }
                ii += width
            }
            for r in ii..<h {
                let src = a.base + (i0 + r) * rs
                for kk in 0..<depth { dst[kk &* mr &+ r] = src[kk] }
            }
        } else {
            for kk in 0..<depth {
                for ii in 0..<h { dst[kk &* mr &+ ii] = a.element(i0 + ii, kk) }
            }
        }
        dst += mr * depth
        i0 += mr
    }
}

// MARK: - Micro-kernel

/// One tile of C, `Rows × (Vectors · lane width)`: `start + Σ_k A[i, k] · B[k, j]` for `depth` values of k,
/// A element (i, k) at `a[i·aRow + k·aDepth]`, B row k at `b + k·bDepth` (whole vectors, zero-padded), C row i
/// at `c + i·cRowStride`, all its vectors stored whole. The sum over k is formed in registers, then the start
/// value (C itself or the bias) is added to it.
///
/// Written so that the optimiser keeps all accumulators in registers: every loop over them has a constant trip
/// count and a small body (it unrolls completely, nothing indexes them with a variable), and index arithmetic
/// wraps (`&*`, `&+`) so no overflow check sits in the depth loop.
@inline(__always)
func tileKernel<V: KernelVariant, Rows: StaticCount, Vectors: StaticCount>(
    _: V.Type, _: Rows.Type, _: Vectors.Type, depth: Int,
    a: UnsafePointer<Double>, aRow: Int, aDepth: Int, b: UnsafePointer<Double>, bDepth: Int,
    c: UnsafeMutablePointer<Double>, cRowStride: Int, start: ProductStart
) {
    typealias Lane = V.Lane
    let width = Lane.scalarCount
    let rows = Rows.value, vectors = Vectors.value
    var acc = InlineArray<24, Lane>(repeating: Lane())
    var ap = a, bp = b
    var k = depth
    while k > 0 {
        var bv = InlineArray<4, Lane>(repeating: Lane())
        for j in 0..<vectors { bv[j] = loadLane(bp + j &* width) }
        for i in 0..<rows {
            let s = Lane(repeating: ap[i &* aRow])
            for j in 0..<vectors {
                acc[i &* vectors &+ j] = multiplyAdd(V.self, s, bv[j], acc[i &* vectors &+ j])
            }
        }
        ap += aDepth
        bp += bDepth
        k &-= 1
    }
    // C = start + acc, whole vectors (a tile with a partial last vector is computed into a scratch tile; see
    // `multiply`).
    switch start {
    case .zero:
        for i in 0..<rows {
            for j in 0..<vectors { storeLane(acc[i &* vectors &+ j], c + (i &* cRowStride &+ j &* width)) }
        }
    case .accumulate:
        for i in 0..<rows {
            for j in 0..<vectors {
                let p = c + (i &* cRowStride &+ j &* width)
                storeLane(loadLane(p, as: Lane.self) + acc[i &* vectors &+ j], p)
            }
        }
    case let .bias(bias):
        for j in 0..<vectors {
            let bj = loadLane(bias + j &* width, as: Lane.self)
            for i in 0..<rows { storeLane(acc[i &* vectors &+ j] + bj, c + (i &* cRowStride &+ j &* width)) }
        }
    }
}

/// C = start + tile for the first `columns` (< lane width) columns of a `(rows, ·)` tile computed into `tile`
/// (row stride `tileRowStride`) because its only vector reaches past C's columns: a vector operation per row
/// and a partial store.
@inline(never)
private func mergeEdgeTile<V: KernelVariant>(_: V.Type, _ tile: UnsafePointer<Double>, tileRowStride: Int, rows: Int,
                                             columns: Int, c: UnsafeMutablePointer<Double>, cRowStride: Int,
                                             start: ProductStart) {
    typealias Lane = V.Lane
    var source = tile, row = c
    switch start {
    case .zero:
        for _ in 0..<rows {
            storeLane(loadLane(source, as: Lane.self), row, count: columns)
            source += tileRowStride; row += cRowStride
        }
    case .accumulate:
        for _ in 0..<rows {
            storeLane(loadLane(source, as: Lane.self) + loadLane(row, count: columns, as: Lane.self), row, count: columns)
            source += tileRowStride; row += cRowStride
        }
    case let .bias(bias):
        let b = loadLane(bias, count: columns, as: Lane.self)
        for _ in 0..<rows {
            storeLane(loadLane(source, as: Lane.self) + b, row, count: columns)
            source += tileRowStride; row += cRowStride
        }
    }
}

/// `tileKernel` for one shape, compiled on its own (each shape the dispatch below names is specialised once).
@inline(never)
func tile<V: KernelVariant, Rows: StaticCount, Vectors: StaticCount>(
    _ variant: V.Type, _ r: Rows.Type, _ v: Vectors.Type, depth: Int,
    a: UnsafePointer<Double>, aRow: Int, aDepth: Int, b: UnsafePointer<Double>, bDepth: Int,
    c: UnsafeMutablePointer<Double>, cRowStride: Int, start: ProductStart
) {
    tileKernel(variant, r, v, depth: depth, a: a, aRow: aRow, aDepth: aDepth, b: b, bDepth: bDepth,
               c: c, cRowStride: cRowStride, start: start)
}

/// Runs the micro-kernel of exactly `rows × vectors` (1…mr, 1…nr / lane width): edge tiles do no wasted rows.
@inline(__always)
func runTile<V: KernelVariant>(_ variant: V.Type, rows: Int, vectors: Int, depth: Int,
                               a: UnsafePointer<Double>, aRow: Int, aDepth: Int, b: UnsafePointer<Double>, bDepth: Int,
                               c: UnsafeMutablePointer<Double>, cRowStride: Int, start: ProductStart) {
    precondition(rows >= 1 && rows <= V.TileRows.value && vectors >= 1 && vectors <= V.TileVectors.value,
                 "runTile: \(rows) × \(vectors) for \(V.name)")
    @inline(__always)
    func go<R: StaticCount>(_ r: R.Type) {
        switch vectors {
        case 1: tile(variant, r, Count1.self, depth: depth, a: a, aRow: aRow, aDepth: aDepth, b: b, bDepth: bDepth,
                     c: c, cRowStride: cRowStride, start: start)
        case 2: tile(variant, r, Count2.self, depth: depth, a: a, aRow: aRow, aDepth: aDepth, b: b, bDepth: bDepth,
                     c: c, cRowStride: cRowStride, start: start)
        case 3: tile(variant, r, Count3.self, depth: depth, a: a, aRow: aRow, aDepth: aDepth, b: b, bDepth: bDepth,
                     c: c, cRowStride: cRowStride, start: start)
        default: tile(variant, r, Count4.self, depth: depth, a: a, aRow: aRow, aDepth: aDepth, b: b, bDepth: bDepth,
                      c: c, cRowStride: cRowStride, start: start)
        }
    }
    switch rows {
    case 1: go(Count1.self)
    case 2: go(Count2.self)
    case 3: go(Count3.self)
    case 4: go(Count4.self)
    case 5: go(Count5.self)
    case 6: go(Count6.self)
    case 7: go(Count7.self)
    default: go(Count8.self)
    }
}
