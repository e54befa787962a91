import Foundation

// A localisation in the reports: its lines in the text report and its `"locate"` object in the JSON, read back
// by `Report.load` so that `merge` keeps it.

extension Localisation {
    /// The sentence naming what differs first, e.g. "epoch 1, batch 17: layers[4] (Tanh) backward dInput differs:
    /// max |Δ| 3.1e-03 at [2, 5] (numpy 0.1234, reference 0.1265); every tensor before it agrees within 4.4e-16".
    public var whereText: String {
        switch finding {
        case let .tensor(d):
            let place = d.step == 0 ? "epoch 0 (before any update)" : "epoch \(d.epoch), batch \(d.batch)"
            guard d.maxDifference.isFinite || !d.engineValue.isNaN else { return "\(place): \(d.what): \(d.causeText)" }
            let at = d.index.isEmpty ? "" : " at \(d.index)"
            let before = d.tensorsBefore == 0 ? "it is the first tensor compared"
                : "every tensor before it (\(d.tensorsBefore)) agrees within \(scientific(d.agreedBefore))"
            return "\(place): \(d.what) differs: max |Δ| \(scientific(d.maxDifference))\(at) (\(engine) \(formatNumber(d.engineValue)), "
                + "\(referee) \(formatNumber(d.refereeValue)); tolerance there \(scientific(d.tolerance))); \(before)"
        case let .schedule(epoch, batch, message): return "epoch \(epoch), batch \(batch): \(message)"
        case let .evaluation(epoch, message): return "epoch \(epoch): \(message)"
        case let .notFound(message): return message
        }
    }

    /// "local to Tanh backward: …", "propagated: …", or nil when nothing was found.
    public var whyText: String? {
        guard case let .tensor(d) = finding else { return nil }
        return d.causeText
    }

    /// "tanh-derivative-from-input (max difference 2.2e-16)", or "no known convention matches (…)".
    public var conventionText: String? {
        guard let convention else { return nil }
        if let best = convention.best { return "\(best.id) (max difference \(scientific(best.maxDifference)))" }
        let closest = convention.candidates.min { $0.maxDifference < $1.maxDifference }
        return "no known convention matches" + (closest.map { " (closest: \($0.id), max difference \(scientific($0.maxDifference)))" } ?? "")
            + (convention.candidates.isEmpty ? " (none applies)" : "")
    }

    /// The lines of the text report, each at most `width` columns, indented by `indent`.
    func textLines(indent: String, width: Int = 120) -> [String] {
        var lines = wrapped("Where: \(whereText)", indent: indent, width: width)
        if let why = whyText { lines += wrapped("Cause: \(why)", indent: indent, width: width) }
        if let convention = conventionText { lines += wrapped("Convention: \(convention)", indent: indent, width: width) }
        for note in notes { lines += wrapped("Note: \(note)", indent: indent, width: width) }
        lines += wrapped("Located in \(String(format: "%.2f", seconds)) s over \(counted(stepsWalked, "step"))"
                         + (convention.map { ", and \(counted($0.candidates.count, "convention")) tried" } ?? ""), indent: indent, width: width)
        return lines
    }
}

extension TensorDifference {
    /// "local to Tanh backward: …".
    public var causeText: String {
        switch cause {
        case let .local(detail): return "local to \(detail)"
        case let .propagated(detail): return "propagated: \(detail)"
        case let .unknown(detail): return "cannot tell local from propagated: \(detail)"
        }
    }
}

/// `text` cut into lines of at most `width` columns at spaces, the first indented by `indent`, the others by
/// two more spaces.
func wrapped(_ text: String, indent: String, width: Int) -> [String] {
    var lines: [String] = [], line = indent
    for word in text.split(separator: " ", omittingEmptySubsequences: false) {
        let fresh = line == indent || line == indent + "  "
        if !fresh && line.count + 1 + word.count > width {
            lines.append(line)
            line = indent + "  "
        }
        line += (line == indent || line == indent + "  " ? "" : " ") + word
    }
    lines.append(line)
    return lines
}

/// What `compare locate` prints: the verdict, then for each located comparison the failure and where, why and
/// which convention; at most 120 columns.
public func locateReport(_ report: Report) -> String {
    var out = [textReport(report).prefix { $0 != "\n" }.description]
    var located = 0
    for experiment in report.experiments {
        for round in experiment.rounds {
            for comparison in round.comparisons where !comparison.passed {
                guard let found = round.localisations.first(where: { $0.engine == comparison.engine && $0.referee == comparison.referee })
                else { continue }
                located += 1
                out.append("")
                out += wrapped("\(experiment.name) round \(round.round) (seed \(round.seed)), \(comparison.engine) against \(comparison.referee): "
                               + comparison.reason, indent: "", width: 120)
                out += found.textLines(indent: "  ")
            }
        }
    }
    if located == 0 {
        out.append(report.passed ? "Nothing to locate: every engine agrees with Reference." :
                   "Nothing located: the failing comparisons are against Framework only (see `compare run`).")
    }
    return out.joined(separator: "\n")
}

// MARK: - JSON

extension Localisation {
    var jsonValue: JSONValue {
        jsonObject { o in
            o["engine"] = .string(engine)
            o["referee"] = .string(referee)
            o["where"] = .string(whereText)
            o["cause"] = whyText.map { .string($0) } ?? .null
            switch finding {
            case let .tensor(d):
                o["finding"] = .string("tensor")
                o["epoch"] = .integer(d.epoch)
                o["batch"] = .integer(d.batch)
                o["step"] = .integer(d.step)
                o["tensor"] = .string(d.tensor)
                o["what"] = .string(d.what)
                o["operation"] = .string(d.operation)
                o["index"] = .string(d.index)
                o["maxDifference"] = .number(d.maxDifference)
                o["engineValue"] = .number(d.engineValue)
                o["refereeValue"] = .number(d.refereeValue)
                o["tolerance"] = .number(d.tolerance)
                o["agreedBefore"] = .number(d.agreedBefore)
                o["tensorsBefore"] = .integer(d.tensorsBefore)
                switch d.cause {
                case let .local(detail): o["local"] = .bool(true); o["causeDetail"] = .string(detail)
                case let .propagated(detail): o["local"] = .bool(false); o["causeDetail"] = .string(detail)
                case let .unknown(detail): o["local"] = .null; o["causeDetail"] = .string(detail)
                }
            case let .schedule(epoch, batch, message):
                o["finding"] = .string("schedule")
                o["epoch"] = .integer(epoch)
                o["batch"] = .integer(batch)
                o["message"] = .string(message)
            case let .evaluation(epoch, message):
                o["finding"] = .string("evaluation")
                o["epoch"] = .integer(epoch)
                o["message"] = .string(message)
            case let .notFound(message):
                o["finding"] = .string("notFound")
                o["message"] = .string(message)
            }
            o["stepsWalked"] = .integer(stepsWalked)
            o["closestApproach"] = .number(closestApproach)
            o["notes"] = .array(notes.map { .string($0) })
            o["seconds"] = .number(seconds)
            o["convention"] = convention.map { fingerprint in
                fingerprint.best.map { best in jsonObject { c in c["id"] = .string(best.id); c["maxDifference"] = .number(best.maxDifference) } }
                    ?? .null
            } ?? .null
            o["conventionsTried"] = convention.map { fingerprint in
                .array(fingerprint.candidates.map { candidate in
                    jsonObject { c in
                        c["id"] = .string(candidate.id)
                        c["maxDifference"] = .number(candidate.maxDifference)
                        c["matched"] = .bool(candidate.matched)
                    }
                })
            } ?? .null
            o["conventionsSkipped"] = convention.map { .array($0.skipped.map { .string($0) }) } ?? .null
        }
    }

    init(node: JSONNode) throws {
        let m = try node.members()
        func string(_ key: String) throws -> String { try m.required(key, "missing").string() }
        func integer(_ key: String) throws -> Int { try m.required(key, "missing").integer() }
        func number(_ key: String) throws -> Double { try m.required(key, "missing").numberOrNonFinite() }
        engine = try string("engine")
        referee = try string("referee")
        switch try string("finding") {
        case "tensor":
            let local = try m.required("local", "missing")
            let detail = try string("causeDetail")
            let cause: LocateCause = local.isNull ? .unknown(detail) : (try local.bool() ? .local(detail) : .propagated(detail))
            finding = .tensor(TensorDifference(epoch: try integer("epoch"), batch: try integer("batch"), step: try integer("step"),
                                               tensor: try string("tensor"), what: try string("what"), operation: try string("operation"),
                                               index: try string("index"), maxDifference: try number("maxDifference"),
                                               engineValue: try number("engineValue"), refereeValue: try number("refereeValue"),
                                               tolerance: try number("tolerance"), agreedBefore: try number("agreedBefore"),
                                               tensorsBefore: try integer("tensorsBefore"), cause: cause))
        case "schedule": finding = .schedule(epoch: try integer("epoch"), batch: try integer("batch"), message: try string("message"))
        case "evaluation": finding = .evaluation(epoch: try integer("epoch"), message: try string("message"))
        case "notFound": finding = .notFound(try string("message"))
        default: throw try m.required("finding", "").problem("expected tensor, schedule, evaluation or notFound")
        }
        stepsWalked = try integer("stepsWalked")
        closestApproach = try number("closestApproach")
        notes = try m.required("notes", "missing").array().map { try $0.string() }
        seconds = try number("seconds")
        let tried = try m.required("conventionsTried", "missing")
        if tried.isNull {
            convention = nil
        } else {
            let candidates = try tried.array().map { node -> ConventionCandidate in
                let c = try node.members()
                return ConventionCandidate(id: try c.required("id", "missing").string(),
                                           maxDifference: try c.required("maxDifference", "missing").numberOrNonFinite(),
                                           matched: try c.required("matched", "missing").bool())
            }
            let skipped = try m.required("conventionsSkipped", "missing").array().map { try $0.string() }
            let best = try m.required("convention", "missing")
            let bestID = best.isNull ? nil : try best.members().required("id", "missing").string()
            convention = ConventionFingerprint(best: candidates.first { $0.id == bestID && $0.matched }, candidates: candidates, skipped: skipped)
        }
    }
}
