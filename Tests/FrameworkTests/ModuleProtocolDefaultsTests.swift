import Framework
import TestSupport
import XCTest

/// The `Module` protocol's defaults, as a user's own module gets them: `zeroGradients()` zeroes every parameter,
/// and `accumulateGradients(_:)` (what `Sequential` calls on its first module) is `backward` with the result
/// dropped. The built-in modules override both, so only a module of one's own runs these.
final class ModuleProtocolDefaultsTests: XCTestCase {
    /// `y = x ⊙ scale + shift`, `(batch, width) → (batch, width)`, with `scale` and `shift` `(1, width)`; it keeps
    /// only the five requirements without defaults.
    ///
    ///     dScale += Σ_batch dY ⊙ x     dShift += Σ_batch dY     dX = dY ⊙ scale
    final class ScaleShift: Module {
        let scale: Parameter, shift: Parameter
        private var input = Matrix.empty

        init(scale: [Double], shift: [Double]) {
            self.scale = Parameter(name: "scale", value: Matrix([scale]))
            self.shift = Parameter(name: "shift", value: Matrix([shift]))
        }

        var inputWidth: Int? { scale.value.columns }
        func outputWidth(forInputWidth width: Int) -> Int { width }
        var parameters: [Parameter] { [scale, shift] }
        var description: String { "ScaleShift(\(scale.value.columns))" }

        func forward(_ x: Matrix) -> Matrix {
            input = x
            var y = x
            for r in 0..<x.rows { for c in 0..<x.columns { y[r, c] = x[r, c] * scale.value[0, c] + shift.value[0, c] } }
            return y
        }

        func backward(_ dY: Matrix) -> Matrix {
            var dX = dY
            for r in 0..<dY.rows {
                for c in 0..<dY.columns {
                    scale.gradient[0, c] += dY[r, c] * input[r, c]
                    shift.gradient[0, c] += dY[r, c]
                    dX[r, c] = dY[r, c] * scale.value[0, c]
                }
            }
            return dX
        }
    }

    /// x = [[1, 2], [3, −1]], dY = [[1, 1], [2, −1]], scale = [2, 3]:
    /// dScale = [1·1 + 2·3, 1·2 + (−1)(−1)] = [7, 3], dShift = [3, 0].
    let x = Matrix([[1, 2], [3, -1]]), dY = Matrix([[1, 1], [2, -1]])

    func testTheDefaultZeroGradientsZeroesEveryParameter() {
        let module = ScaleShift(scale: [2, 3], shift: [0, 0])
        _ = module.forward(x)
        _ = module.backward(dY)
        assertClose(module.scale.gradient, Matrix([[7, 3]]), rtol: 0)
        assertClose(module.shift.gradient, Matrix([[3, 0]]), rtol: 0)
        module.zeroGradients()
        for parameter in module.parameters {
            XCTAssertEqual(parameter.gradient, Matrix(rows: 1, columns: 2), "\(parameter.name) after zeroGradients()")
        }
    }

    func testTheDefaultAccumulateGradientsIsBackward() {
        let module = ScaleShift(scale: [2, 3], shift: [0, 0])
        _ = module.forward(x)
        module.accumulateGradients(dY)
        assertClose(module.scale.gradient, Matrix([[7, 3]]), rtol: 0, "accumulateGradients accumulates what backward does")
        assertClose(module.shift.gradient, Matrix([[3, 0]]), rtol: 0)
    }

    /// A user's module first in a `Sequential` is trained by `Trainer` like a built-in one: `Sequential` calls
    /// its (default) `accumulateGradients` and its (default) `zeroGradients` before every batch. One full-batch
    /// SGD step on MSE, worked by hand: with scale = [1, 1], shift = [0, 0] and the identity Linear, y = x;
    /// targets t = 0 give dL/dy = 2y/4 = [[0.5, 1], [1.5, −0.5]], so dScale = Σ dY ⊙ x = [0.5 + 4.5, 2 + 0.5] =
    /// [5, 2.5], dShift = [2, 0.5]; after lr 0.1: scale = [0.5, 0.75], shift = [−0.2, −0.05]. A second identical
    /// epoch then starts from zeroed gradients.
    func testAUserModuleFirstInASequentialLearns() throws {
        let first = ScaleShift(scale: [1, 1], shift: [0, 0])
        let model = try Sequential([first, Linear(weight: Matrix([[1, 0], [0, 1]]), bias: Matrix([[0, 0]]))])
        let data = Dataset(inputs: x, targets: Matrix(rows: 2, columns: 2))
        let sgd = try SGD(learningRate: 0.1)
        model.zeroGradients()
        let y = model.forward(x)
        model.accumulateGradients(MSELoss().gradient(predictions: y, targets: data.targets))
        assertClose(first.scale.gradient, Matrix([[5, 2.5]]), rtol: 1e-15)
        assertClose(first.shift.gradient, Matrix([[2, 0.5]]), rtol: 1e-15)
        sgd.step(model.parameters)
        assertClose(first.scale.value, Matrix([[0.5, 0.75]]), rtol: 1e-15)
        assertClose(first.shift.value, Matrix([[-0.2, -0.05]]), rtol: 1e-15)

        // Through Trainer: two epochs of one batch each equal two hand-made steps, each from zeroed gradients.
        let trained = ScaleShift(scale: [1, 1], shift: [0, 0])
        let trainedModel = try Sequential([trained, Linear(weight: Matrix([[1, 0], [0, 1]]), bias: Matrix([[0, 0]]))])
        _ = Trainer(epochs: 2, batchSize: 2).fit(trainedModel, loss: MSELoss(), optimizer: try SGD(learningRate: 0.1),
                                                 train: data, test: data)
        model.zeroGradients()
        model.accumulateGradients(MSELoss().gradient(predictions: model.forward(x), targets: data.targets))
        sgd.step(model.parameters)
        for (a, b) in zip(trainedModel.parameters, model.parameters) {
            assertClose(a.value, b.value, rtol: 1e-15, "\(a.name) after two epochs")
        }
    }
}
