import ArgumentParser
import CompareCore
import Foundation
import Framework

// `compare gradcheck`: the whole network's gradient at an experiment's initial parameters, in every engine
// (CompareCore's `NetworkGradientCheck`; docs/gradcheck.md). Exit status 0 when every tensor of every engine
// passes, 1 when one fails, 2 for bad input, an engine that could not run or an output that could not be written.

extension CompareCommand {
    struct Gradcheck: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the whole network's gradient (every parameter and the input) at an experiment's initial parameters, in every engine.",
            discussion: """
            At round 0's initial parameters, on the first batch of epoch 1, f = loss(network(x), t) is differentiated by each engine: Framework (its backward, against its own f), Reference (against the referee's f) and every --engine (the first step of its trace, layers[i].dWeight, layers[i].dBias and layers[0].dInput when given, against the referee's f, since an outside engine gives no function to evaluate). Every tensor gets two checks: each element against a central difference (h = 1e-6, |a − n| ≤ 1e-9 + 1e-6·max(|a|, |n|)), and the Taylor certificate: along a random direction the remainder of f's first-order expansion must fall as h² (order 2) over a ladder of 17 halving steps; a wrong gradient falls as h (order 1), however small its error. docs/gradcheck.md explains the ladder, the verdicts and their thresholds.

            Exit status: 0 when every tensor of every engine passes, 1 when one fails, 2 for bad input, an engine that could not run, or an output that could not be written.
            """)

        @Option(name: .customLong("experiment"), help: ArgumentHelp("The experiment file whose round 0 is checked.", valueName: "FILE"))
        var experiment: String

        @OptionGroup var engine: EngineOptions

        @Option(name: .customLong("json"), help: ArgumentHelp("Write the whole check as JSON to this file (its folder is created).", valueName: "OUT"))
        var json: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Refuse a check estimated to take longer than this many seconds (1 to 86400).", valueName: "SECONDS"))
        var timeLimit: Double = NetworkGradientCheck.defaultTimeLimit

        func validate() throws {
            guard timeLimit.isFinite && timeLimit >= 1 && timeLimit <= 86_400 else {
                throw ValidationError("--time-limit must be from 1 to 86400 seconds, got \(formatNumber(timeLimit))")
            }
        }

        func run() throws {
            let loaded: Experiment
            do { loaded = try Experiment.load(contentsOf: URL(fileURLWithPath: experiment)) } catch {
                throw UsageFailure(description: "\(error)")
            }
            let engines = try engine.commandEngines()
            let estimate = NetworkGradientCheck.estimatedSeconds(loaded, outsideEngines: engines.count)
            guard estimate <= timeLimit else {
                throw UsageFailure(description: "\(experiment): refused before checking: the check would take about \(duration(estimate)) "
                                   + "(two evaluations of the network per parameter and input element, \(loaded.model.parameterCount) parameters, "
                                   + "batch \(min(loaded.training.batchSize, loaded.data.trainCount))), more than --time-limit \(formatNumber(timeLimit)) s: "
                                   + "narrower layers or a smaller batch, or a larger --time-limit")
            }
            var plan = OutputPlan()
            plan.addInput(experiment, "the experiment file \(experiment)")
            if let json {
                guard !json.isEmpty else { throw UsageFailure(description: "--json: the path is empty") }
                plan.addFile(json, flag: "--json")
            }
            do { try plan.prepare() } catch let error as OutputError { throw UsageFailure(description: "\(error)") }

            let check: NetworkGradientCheck
            do {
                check = try NetworkGradientCheck(MaterializedRound(loaded, round: 0), outside: engines)
            } catch let error as EngineError {
                throw UsageFailure(description: "\(error)")
            } catch {
                throw UsageFailure(description: "\(experiment): the referee cannot evaluate the network: \(error)")
            }
            let verdict = "the gradient check's verdict was \(check.passed ? "PASS" : "FAIL")"
            if let json {
                do {
                    try writeAtomically(Data(check.jsonValue(file: experiment).text().utf8), to: URL(fileURLWithPath: json))
                } catch let error as OutputError {
                    throw OutputFailure(description: "\(error); \(verdict); the text report was not printed")
                }
            }
            do { try writeStandardOutput(check.textReport(file: experiment) + "\n") } catch let failure as OutputFailure {
                throw OutputFailure(description: "\(failure.description); \(verdict)")
            }
            throw ExitCode(check.passed ? 0 : 1)
        }
    }
}
