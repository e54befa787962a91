#!/usr/bin/env bash
# make coverage: which lines of Framework and Reference the XCTest suite runs.
#
# Builds the suite as `make test` does (release, -enable-testing) with coverage instrumentation, in its own scratch
# folder (COVERAGE_SCRATCH, default .build-coverage), runs the whole XCTest binary once with every process writing
# its own profile (the tests start `compare` and the fuzz replay as subprocesses, which are instrumented too), merges
# the profiles and reports, with the toolchain's llvm-cov:
#   1. line, region and function coverage per file of Sources/Framework and Sources/Reference (llvm-cov report);
#   2. per file, the uncovered lines as file:line ranges;
#   3. for the kernels, the losses and the optimizers (and Matrix.swift), every code region that never ran, with its
#      first line of source: the branches (if/else arms, ?: arms, loop bodies, early returns) the suite never takes.
# Why release: the kernels are generic over their SIMD variant, and a debug build runs them unspecialised, tens of
# times slower (the Makefile's TEST_FLAGS). Counters are incremented where the code was before optimisation, so
# the counts are exact; only a line that optimisation merged away can show as "not executable".
# Tests that fail do not stop the report (it says how many failed); the exit status is then 1.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SCRATCH=${COVERAGE_SCRATCH:-.build-coverage}
# The suite's build as the Makefile declares it (SUITE_BUILD_FLAGS), instrumented.
read -r -a SUITE_FLAGS <<< "$(make -s --no-print-directory suite-build-flags)"
FLAGS=("${SUITE_FLAGS[@]}" --enable-code-coverage --scratch-path "$SCRATCH")
TOOLCHAIN=$(dirname "$(readlink -f "$(command -v "$SWIFT")")")
LLVM_COV=${LLVM_COV:-$TOOLCHAIN/llvm-cov}
LLVM_PROFDATA=${LLVM_PROFDATA:-$TOOLCHAIN/llvm-profdata}
[[ -x $LLVM_COV ]] || LLVM_COV=llvm-cov          # a toolchain without its own: hope for a matching version
[[ -x $LLVM_PROFDATA ]] || LLVM_PROFDATA=llvm-profdata

OUT="$SCRATCH/coverage"
status=0
if [[ ${1:-} != --report-only ]]; then  # --report-only: report the last run's profiles again
  echo "coverage: building (release, -enable-testing, --enable-code-coverage) in $SCRATCH" >&2
  "$SWIFT" build "${FLAGS[@]}" --build-tests >&2
fi
BIN=$("$SWIFT" build "${FLAGS[@]}" --show-bin-path)
XCTEST=$(ls -d "$BIN"/*.xctest | head -1)
if [[ ${1:-} != --report-only ]]; then
  rm -rf "$OUT"
  mkdir -p "$OUT/profiles"
  echo "coverage: running the suite ($XCTEST); its log is $OUT/tests.log" >&2
  LLVM_PROFILE_FILE="$PWD/$OUT/profiles/%p.profraw" "$XCTEST" > "$OUT/tests.log" 2>&1 || status=$?
fi
summary=$(grep -E "^\s*Executed [0-9]+ tests" "$OUT/tests.log" | tail -1 | sed 's/^[[:space:]]*//')
echo "coverage: ${summary:-the suite did not finish (status $status)}" >&2
# A subprocess that a test kills on purpose (a timeout, a signal) writes no profile or a truncated one: merge the rest.
"$LLVM_PROFDATA" merge -sparse --failure-mode=all "$OUT"/profiles/*.profraw -o "$OUT/merged.profdata" 2> "$OUT/merge.log"
echo "coverage: merged $(ls "$OUT"/profiles | wc -l) profiles ($(grep -c warning "$OUT/merge.log" || true) unreadable, see $OUT/merge.log)" >&2

OBJECTS=("$XCTEST")
for executable in compare FuzzExperiment; do
  [[ -x $BIN/$executable ]] && OBJECTS+=(-object "$BIN/$executable")
done
SOURCES=(Sources/Framework Sources/Reference)

echo
echo "## Line coverage of Framework and Reference by the XCTest suite (${summary:-incomplete run})"
echo
"$LLVM_COV" report "${OBJECTS[@]}" -instr-profile "$OUT/merged.profdata" "${SOURCES[@]}" | sed "s|$PWD/||"
"$LLVM_COV" export "${OBJECTS[@]}" -instr-profile "$OUT/merged.profdata" -format=lcov "${SOURCES[@]}" > "$OUT/coverage.lcov"
"$LLVM_COV" export "${OBJECTS[@]}" -instr-profile "$OUT/merged.profdata" -format=text "${SOURCES[@]}" > "$OUT/coverage.json"

python3 - "$PWD" "$OUT/coverage.lcov" "$OUT/coverage.json" <<'PY'
import json, os, sys
root, lcov, export = sys.argv[1], sys.argv[2], sys.argv[3]
rel = lambda p: os.path.relpath(p, root)

# Uncovered lines per file, from lcov's DA records (the same line counts llvm-cov report uses).
uncovered, current = {}, None
for line in open(lcov):
    if line.startswith("SF:"):
        current = rel(line[3:].strip())
        uncovered[current] = []
    elif line.startswith("DA:") and current:
        number, count = line[3:].split(",")[:2]
        if int(count) == 0:
            uncovered[current].append(int(number))

def ranges(numbers):
    out, start, prev = [], None, None
    for n in sorted(numbers):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append((start, prev)); start = prev = n
    if start is not None:
        out.append((start, prev))
    return out

print("\n## Uncovered lines (file:first-last)\n")
for name in sorted(uncovered):
    spans = ranges(uncovered[name])
    if spans:
        print(f"{name}: " + ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans))

# Regions that never ran, in the files whose branches matter most.
data = json.load(open(export))["data"][0]
focus = ("Sources/Framework/Kernels/", "Sources/Framework/Losses.swift", "Sources/Framework/Optimizers.swift",
         "Sources/Framework/Matrix.swift", "Sources/Framework/Linear.swift")
zero = {}
for function in data["functions"]:
    files = [rel(f) for f in function["filenames"]]
    for r in function["regions"]:
        line0, col0, line1, col1, count, file_id, _, kind = r[:8]
        name = files[file_id]
        if kind != 0 or not name.startswith(focus):
            continue
        key = (name, line0, col0, line1, col1)
        zero[key] = max(zero.get(key, 0), count)
print("\n## Code regions never run in the kernels, Matrix, Linear, the losses and the optimizers\n")
lines_of, listed = {}, []
shown = messages = 0
for (name, line0, col0, line1, col1), count in sorted(zero.items()):
    if count:
        continue
    # A region inside one already listed (a branch inside a loop body that never ran) adds nothing.
    if any(n == name and (a, b) <= (line0, col0) and (line1, col1) <= (c, d) for n, a, b, c, d in listed):
        continue
    listed.append((name, line0, col0, line1, col1))
    text = lines_of.setdefault(name, open(os.path.join(root, name)).read().split("\n"))
    source = text[line0 - 1].strip() if line0 - 1 < len(text) else ""
    # A precondition's message is built only when the precondition fails: not a branch the tests owe.
    here = text[line0 - 1] if line0 - 1 < len(text) else ""
    before = text[line0 - 2] if line0 >= 2 else ""
    if ("precondition(" in here and here.index("precondition(") < col0 - 1) or \
       (source.startswith('"') and "precondition(" in before):
        messages += 1
        continue
    print(f"{name}:{line0}:{col0}-{line1}:{col1}  {source[:110]}")
    shown += 1
if not shown:
    print("(none)")
if messages:
    print(f"({messages} never-built precondition messages not listed)")
PY
exit $((status == 0 ? 0 : 1))
