#!/usr/bin/env python3
"""Mutation testing: plant each small bug of mutants/*.mutant in a scratch copy of the package, rebuild, run the
tests, and report which bugs the suite catches.

    scripts/mutate.py                      every mutant (make mutate)
    scripts/mutate.py 'sgd-*' kernel-pack  only the mutants whose id matches one of the patterns (make mutate MUTANTS=...)
    scripts/mutate.py --list               the mutants, one line each, and whether each applies; builds nothing
    scripts/mutate.py --check              exactly --list, but exits non-zero when a mutant does not apply
    scripts/mutate.py --help               this text; any other option is an error (exit 2)

A mutant is a spec, not a diff, so that it survives edits elsewhere in the file (mutants/README.md):

    bug: the one-line description of the planted bug
    file: Sources/Framework/Optimizers.swift
    --- original
    <the exact text to replace: it must occur exactly once in the file>
    --- mutant
    <the text that replaces it>
    --- end

How a run goes (the cost is in the build, so everything avoids rebuilding what did not change):
  1. The package is `git clone`d once into a scratch folder (MUTATE_SCRATCH, default $TMPDIR/minidl-mutate), and
     the working tree is copied over it (tracked and untracked files that git does not ignore, plus
     Package.resolved): the mutants are judged against the code as it is now, committed or not. Files whose
     content did not change keep their time stamps, so the scratch build stays incremental from run to run.
  2. The unmutated tree is built (`swift build` with the Makefile's SUITE_BUILD_FLAGS: release, -enable-testing; plus
     -disable-cmo, see BUILD_FLAGS) and
     the tests are run once to learn which pass and how long each takes (cached by a hash of the tree). A test
     that fails on the unmutated tree is left out, and said so.
  3. Per mutant: the previous mutant's file is restored, this one applied, the package rebuilt (SwiftPM rebuilds
     the mutated module and relinks; dependents recompile only when the module's interface changed, e.g. an
     @inlinable body), and the tests run, at most a couple of seconds' worth per XCTest process, stopping at the
     first failure. A mutant that does not compile is *invalid* (a mistake in the mutant, not a catch).

Which tests run for a mutant (the test targets that can see the mutated module, from Package.swift):
    Sources/Framework/**    FrameworkTests, then ReferenceTests and CompareTests (both link Framework)
    Sources/Reference/**    ReferenceTests, then CompareTests
    Sources/CompareCore/**  CompareTests
Within that list: first the test that caught this mutant last time (kept in the scratch folder), then the tests
of the first target, fastest first, then the other targets' tests, fastest first. So a caught mutant usually
costs its build plus well under a second of tests, and only a survivor runs every test that can see its code.

Results: `caught` (a test failed, crashed or timed out: it names the first such test), `survived` (every test
passed), `does not apply` (the original text is not in the file exactly once), `invalid` (does not compile).
Exit status: 1 if a mutant survived, else 2 if one did not apply or was invalid, else 0.
"""
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS_DIR = os.path.join(ROOT, "mutants")
SCRATCH = os.environ.get("MUTATE_SCRATCH") or os.path.join(tempfile.gettempdir(), "minidl-mutate")
WORK = os.path.join(SCRATCH, "work")
SWIFT = os.environ.get("SWIFT", "swift")
# The suite's build as the Makefile declares it (SUITE_BUILD_FLAGS: `make test` without its `swift test` option),
# plus -disable-cmo: without it the release build's default cross-module optimisation copies small function bodies
# into Framework.swiftmodule, so a one-line mutant changes the module file and every dependent target recompiles
# (about 2 minutes instead of 11 s). CMO only decides what may be inlined across modules; it changes no result
# (Swift never contracts a·b + c).
BUILD_FLAGS = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "suite-build-flags"], check=True,
                             capture_output=True, text=True).stdout.split() + ["-Xswiftc", "-disable-cmo"]

# Test targets that can see each module (Package.swift), the module's own first.
TARGETS_BY_MODULE = {
    "Framework": ["FrameworkTests", "ReferenceTests", "CompareTests"],
    "Reference": ["ReferenceTests", "CompareTests"],
    "CompareCore": ["CompareTests"],
}
BATCH_SECONDS = 2.0    # baseline seconds of tests per XCTest process, so that a failure stops the run soon
BATCH_TESTS = 40


def log(message=""):
    print(message, flush=True)


# MARK: - Mutant specs

class Mutant:
    def __init__(self, path):
        self.path = path
        self.id = os.path.basename(path)[: -len(".mutant")]
        self.bug = self.file = None
        self.original = self.replacement = None
        self.targets = None
        self.parse(open(path, encoding="utf-8").read())

    def parse(self, text):
        section, lines = None, {"original": [], "mutant": []}
        for number, line in enumerate(text.split("\n"), 1):
            if line.startswith("--- "):
                name = line[4:].strip()
                if name == "end":
                    section = "done"
                    continue
                if name not in lines or section == "done":
                    raise ValueError(f"{self.path}:{number}: unknown or misplaced section '{line}'")
                section = name
                continue
            if section in lines:
                lines[section].append(line)
            elif section is None:
                if not line.strip() or line.startswith("#"):
                    continue
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "bug":
                    self.bug = value
                elif key == "file":
                    self.file = value
                elif key == "targets":
                    self.targets = value.split()
                else:
                    raise ValueError(f"{self.path}:{number}: unknown field '{key}'")
        if section != "done":
            raise ValueError(f"{self.path}: missing '--- end'")
        if not self.bug or not self.file:
            raise ValueError(f"{self.path}: needs 'bug:' and 'file:'")
        self.original = "\n".join(lines["original"])
        self.replacement = "\n".join(lines["mutant"])
        if not self.original or self.original == self.replacement:
            raise ValueError(f"{self.path}: the original is empty or equal to the mutant")

    @property
    def module(self):
        parts = self.file.split("/")
        return parts[1] if len(parts) > 2 and parts[0] == "Sources" else None

    def test_targets(self):
        return self.targets or TARGETS_BY_MODULE.get(self.module, ["FrameworkTests", "ReferenceTests", "CompareTests"])


def load_mutants(patterns):
    paths = sorted(os.path.join(MUTANTS_DIR, n) for n in os.listdir(MUTANTS_DIR) if n.endswith(".mutant"))
    mutants = [Mutant(p) for p in paths]
    if patterns:
        mutants = [m for m in mutants if any(fnmatch.fnmatch(m.id, p) or p in m.id for p in patterns)]
    order = list(TARGETS_BY_MODULE)
    # Grouped by module, then file: consecutive mutants rebuild the same module only.
    mutants.sort(key=lambda m: (order.index(m.module) if m.module in order else len(order), m.file, m.id))
    return mutants


# MARK: - The scratch copy

def run(command, cwd, timeout=None, capture=True):
    return subprocess.run(command, cwd=cwd, timeout=timeout, text=True, errors="replace",
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)


def tree_files(directory):
    out = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], directory).stdout
    files = {f for f in out.split("\0") if f and os.path.isfile(os.path.join(directory, f))}
    if os.path.isfile(os.path.join(directory, "Package.resolved")):
        files.add("Package.resolved")
    return files


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    now = time.time()
    os.utime(path, (now, now))  # a new time stamp even within the file system's time resolution


def sync_scratch():
    """Clones the package once, then makes the scratch tree equal to the working tree; returns its hash."""
    if not os.path.isdir(os.path.join(WORK, ".git")):
        os.makedirs(SCRATCH, exist_ok=True)
        log(f"cloning {ROOT} into {WORK}")
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", ROOT, WORK], check=True)
    source, scratch = tree_files(ROOT), tree_files(WORK)
    changed = 0
    digest = hashlib.sha256()
    for name in sorted(source):
        data = read_bytes(os.path.join(ROOT, name))
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        target = os.path.join(WORK, name)
        if not os.path.isfile(target) or read_bytes(target) != data:
            write_bytes(target, data)
            changed += 1
    for name in scratch - source:
        os.remove(os.path.join(WORK, name))
        changed += 1
    log(f"scratch tree {WORK}: {changed} file(s) updated from the working tree")
    return digest.hexdigest()


def build():
    """Builds everything the tests need; returns (ok, output)."""
    result = run([SWIFT, "build", *BUILD_FLAGS, "--build-tests"], WORK)
    return result.returncode == 0, result.stdout


def first_error(output):
    for line in output.splitlines():
        if ": error:" in line:
            return line.replace(WORK + "/", "").strip()
    return output.strip().splitlines()[-1] if output.strip() else "build failed"


def test_binary():
    path = run([SWIFT, "build", *BUILD_FLAGS, "--show-bin-path"], WORK).stdout.strip().splitlines()[-1]
    binaries = [n for n in os.listdir(path) if n.endswith(".xctest")]
    if len(binaries) != 1:
        sys.exit(f"mutate: expected one .xctest in {path}, found {binaries}")
    return os.path.join(path, binaries[0])


# MARK: - Running tests

CASE = re.compile(r"Test Case '(?:-\[)?([\w.]+)[ /.](\w+)\]?' (started|passed|failed)(?: \(([0-9.]+) seconds\))?")


def run_tests(binary, tests, timeout):
    """Runs `tests` ("Target.Class/test") in one XCTest process. Returns (results, timed_out) where results maps
    each test that finished to ("passed" | "failed", seconds) and a test that started without finishing (a
    crash, or the timeout) to ("crashed" | "timeout", 0)."""
    by_short = {t.split(".", 1)[1].replace("/", "."): t for t in tests}
    results, started = {}, None
    try:
        proc = subprocess.run([binary, ",".join(tests)], cwd=WORK, timeout=timeout, text=True, errors="replace",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output, timed_out = proc.stdout, False
    except subprocess.TimeoutExpired as e:
        output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        timed_out = True
    for match in CASE.finditer(output):
        name = by_short.get(f"{match.group(1).split('.')[-1]}.{match.group(2)}")
        if name is None:
            continue
        if match.group(3) == "started":
            started = name
        else:
            results[name] = (match.group(3), float(match.group(4) or 0))
            started = None
    if started is not None:
        results[started] = ("timeout" if timed_out else "crashed", 0.0)
    elif timed_out:
        results.setdefault(tests[0], ("timeout", 0.0))
    return results, output


def batches(tests, seconds):
    batch, total = [], 0.0
    for test in tests:
        if batch and (total + seconds.get(test, 1.0) > BATCH_SECONDS or len(batch) >= BATCH_TESTS):
            yield batch
            batch, total = [], 0.0
        batch.append(test)
        total += seconds.get(test, 1.0)
    if batch:
        yield batch


def baseline(binary, tree_hash, targets):
    """Which tests of `targets` pass on the unmutated tree, and their durations (cached by the tree's hash)."""
    cache = os.path.join(SCRATCH, "baseline.json")
    listing = run([binary, "--list-tests"], WORK).stdout.splitlines()
    all_tests = [l.strip() for l in listing if re.match(r"^\s*\w+\.\w+/\w+\s*$", l)]
    wanted = [t for t in all_tests if t.split(".")[0] in targets]
    if os.path.isfile(cache):
        data = json.load(open(cache))
        if data.get("tree") == tree_hash and set(wanted) <= set(data["seconds"]) | set(data["failing"]):
            log(f"baseline: cached for this tree ({len(data['seconds'])} passing, {len(data['failing'])} failing)")
            return data["seconds"], data["failing"]
    log(f"baseline: running {len(wanted)} tests on the unmutated tree")
    seconds, failing = {}, {}
    by_class = {}
    for t in wanted:
        by_class.setdefault(t.split("/")[0], []).append(t)
    for cls, tests in by_class.items():
        remaining = list(tests)
        while remaining:
            results, _ = run_tests(binary, remaining, timeout=900)
            for t in remaining:
                status, s = results.get(t, ("not run", 0.0))
                if status == "passed":
                    seconds[t] = s
                elif status != "not run":
                    failing[t] = status
            # After a crash the rest of the class did not run: go on with the tests after the crashed one.
            crashed = [t for t in remaining if results.get(t, ("",))[0] in ("crashed", "timeout")]
            remaining = remaining[remaining.index(crashed[0]) + 1:] if crashed else []
            remaining = [t for t in remaining if t not in results]
    json.dump({"tree": tree_hash, "seconds": seconds, "failing": failing}, open(cache, "w"), indent=1)
    return seconds, failing


def judge(mutant, binary, seconds, killers):
    """Runs the tests that can see the mutant's module until one fails: ("caught", test, how) or ("survived", None, n)."""
    targets = mutant.test_targets()
    candidates = [t for t in seconds if t.split(".")[0] in targets]
    candidates.sort(key=lambda t: (targets.index(t.split(".")[0]), seconds[t], t))
    first = killers.get(mutant.id)
    groups = [[first]] if first in candidates else []
    groups += batches([t for t in candidates if t != first], seconds)
    ran = 0
    for batch in groups:
        budget = sum(seconds[t] for t in batch)
        results, output = run_tests(binary, batch, timeout=max(60.0, 10 * budget + 30))
        ran += len(batch)
        for test in batch:
            status = results.get(test, ("not run",))[0]
            if status in ("failed", "crashed", "timeout"):
                return "caught", test, status
        missing = [t for t in batch if t not in results]
        if missing:  # the process ended without running them: count as a crash of the first one
            return "caught", missing[0], "crashed"
    return "survived", None, ran


# MARK: - Main

def main():
    args = sys.argv[1:]
    if "-h" in args or "--help" in args:
        print(__doc__)
        return
    options = [a for a in args if a.startswith("-")]
    unknown = [a for a in options if a not in ("--list", "--check")]
    if unknown:
        print(f"mutate: unknown option {unknown[0]}; the options are --list, --check and --help (patterns are plain words)", file=sys.stderr)
        sys.exit(2)
    listing = bool(options)  # --list or --check
    patterns = [a for a in args if a not in options] + os.environ.get("MUTANTS", "").split()
    mutants = load_mutants(patterns)
    if not mutants:
        sys.exit("mutate: no mutant matches " + " ".join(patterns))
    start = time.time()

    if listing:
        bad = 0
        for m in mutants:
            text = open(os.path.join(ROOT, m.file), encoding="utf-8").read() if os.path.isfile(os.path.join(ROOT, m.file)) else ""
            count = text.count(m.original)
            state = "applies" if count == 1 else f"does not apply (original found {count} times)"
            bad += count != 1
            log(f"{m.id:48} {m.file:48} {state}\n    {m.bug}")
        log(f"{len(mutants)} mutants, {bad} do not apply")
        sys.exit(2 if bad and "--check" in args else 0)

    tree = sync_scratch()
    ok, output = build()
    if not ok:
        sys.exit(f"mutate: the unmutated tree does not build:\n{first_error(output)}")
    binary = test_binary()
    targets = sorted({t for m in mutants for t in m.test_targets()})
    seconds, failing = baseline(binary, tree, targets)
    for test, status in sorted(failing.items()):
        log(f"  left out (fails on the unmutated tree: {status}): {test}")
    killers_file = os.path.join(SCRATCH, "killers.json")
    killers = json.load(open(killers_file)) if os.path.isfile(killers_file) else {}

    originals = {}
    results = []
    dirty = None
    try:
        for index, m in enumerate(mutants, 1):
            t0 = time.time()
            path = os.path.join(WORK, m.file)
            if dirty:  # restore the last mutated file
                write_bytes(os.path.join(WORK, dirty), originals[dirty])
                dirty = None
            if m.file not in originals and os.path.isfile(path):
                originals[m.file] = read_bytes(path)
            text = originals.get(m.file, b"").decode("utf-8")
            count = text.count(m.original)
            if count != 1:
                outcome = ("does not apply", None, f"original found {count} times in {m.file}")
            else:
                write_bytes(path, text.replace(m.original, m.replacement).encode("utf-8"))
                dirty = m.file
                ok, output = build()
                if not ok:
                    outcome = ("invalid", None, "does not compile: " + first_error(output))
                else:
                    status, test, how = judge(m, binary, seconds, killers)
                    if status == "caught":
                        killers[m.id] = test
                        outcome = ("caught", test, how)
                    else:
                        outcome = ("survived", None, f"{how} tests passed")
            elapsed = time.time() - t0
            results.append((m, outcome, elapsed))
            what, test, detail = outcome
            shown = f"by {test}" + ("" if detail == "failed" else f" ({detail})") if what == "caught" else detail
            log(f"[{index:2}/{len(mutants)}] {what.upper():15} {m.id}  {shown}  [{elapsed:.0f} s]")
    finally:
        if dirty:
            write_bytes(os.path.join(WORK, dirty), originals[dirty])
        json.dump(killers, open(killers_file, "w"), indent=1, sort_keys=True)

    counts = {}
    for _, (what, _, _), _ in results:
        counts[what] = counts.get(what, 0) + 1
    caught, survived = counts.get("caught", 0), counts.get("survived", 0)
    log("\n| id | file | bug | result | first failing test |")
    log("|---|---|---|---|---|")
    for m, (what, test, detail), _ in results:
        log(f"| {m.id} | {m.file.replace('Sources/', '')} | {m.bug} | {what} | {test or detail} |")
    judged = caught + survived
    rate = f"{100 * caught / judged:.1f} %" if judged else "n/a"
    minutes = (time.time() - start) / 60
    log(f"\n{len(results)} mutants: {caught} caught, {survived} survived, {counts.get('does not apply', 0)} do not apply, "
        f"{counts.get('invalid', 0)} invalid; catch rate {rate} ({caught}/{judged}); total time {minutes:.1f} min")
    for m, (what, _, detail), _ in results:
        if what != "caught":
            log(f"  {what}: {m.id} ({m.file}): {m.bug}" + (f" [{detail}]" if what != "survived" else ""))
    if survived:
        sys.exit(1)
    if counts.get("does not apply") or counts.get("invalid"):
        sys.exit(2)


if __name__ == "__main__":
    main()
