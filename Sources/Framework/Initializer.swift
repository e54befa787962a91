/// How a `Linear` layer's weight `(out, in)` and bias `(1, out)` get their first values.
///
/// Every random initialiser draws the weight first, row after row, then the bias, from the generator
/// it is given, so a seed fixes the values.
public enum Initializer: Sendable, Equatable {
    /// PyTorch's default for `nn.Linear`: weight and bias each `U(−1/√in, 1/√in)`.
    case `default`
    /// Xavier/Glorot uniform (Glorot & Bengio 2010, gain 1): weight `U(−a, a)`, `a = √(6 / (in + out))`;
    /// bias zero.
    case xavier
    /// Weight and bias each `U(a, b)`.
    case uniform(Double, Double)
    /// Given values: weight `(out, in)`, bias `(1, out)`. Nothing is drawn.
    case explicit(weight: Matrix, bias: Matrix)

    /// The weight `(out, in)` and bias `(1, out)` this initialiser gives.
    public func values(inWidth: Int, outWidth: Int,
                       generator: inout Xoshiro256StarStar) -> (weight: Matrix, bias: Matrix) {
        func draw(_ rows: Int, _ columns: Int, _ a: Double, _ b: Double) -> Matrix {
            var m = Matrix(rows: rows, columns: columns)
            for k in m.elements.indices { m.elements[k] = generator.uniform(a, b) }
            return m
        }
        switch self {
        case .default:
            let bound = 1 / Double(inWidth).squareRoot()
            let weight = draw(outWidth, inWidth, -bound, bound)
            return (weight, draw(1, outWidth, -bound, bound))
        case .xavier:
            let bound = (6 / Double(inWidth + outWidth)).squareRoot()
            return (draw(outWidth, inWidth, -bound, bound), Matrix(rows: 1, columns: outWidth))
        case let .uniform(a, b):
            let weight = draw(outWidth, inWidth, a, b)
            return (weight, draw(1, outWidth, a, b))
        case let .explicit(weight, bias):
            precondition(weight.rows == outWidth && weight.columns == inWidth && bias.rows == 1 && bias.columns == outWidth,
                         "Initializer.explicit: weight \(weight.shape), bias \(bias.shape) for Linear(\(inWidth) → \(outWidth))")
            return (weight, bias)
        }
    }
}
