# The project's commands. `make run` and `make test` are the README's quick start; each first makes sure
# GSL is installed (scripts/ensure-gsl.sh installs libgsl-dev with apt-get when pkg-config cannot find it).
#
#   make run ARGS="--suite seeds"   the main job: `compare`, release build for this machine's CPU
#                                   (NATIVE=0 make run: the portable release build)
#   make test                       the whole XCTest suite (what .ci/run runs); portable release build
#   make test-native                Framework's tests in the host-CPU build (.ci/run runs it too)
#   make bench ARGS="--json b.json" training and product-kernel throughput, built for this machine's CPU
#   make bench-portable             the same benchmark, portable build (no -target-cpu; in .build-portable)
#   make bench-torch                PyTorch on the same workloads (needs `pip install torch`)
#   make sanitize                   the suite under AddressSanitizer, parallel rounds under ThreadSanitizer
#   make fuzz FUZZ_SECONDS=600      libFuzzer on experiment files (docs/hardening.md)
#   make mutate [MUTANTS='sgd-*']   plant each bug of mutants/ in a scratch clone and run the suite (mutants/README.md)
#   make coverage                   the suite with coverage: Framework's and Reference's uncovered lines and branches
#
# `make run` and `make bench` build with host-CPU flags in their own scratch directory (.build-native), so they
# never clobber the portable build that `swift test` uses. The flags are passed on the command line only:
# Package.swift stays free of unsafe flags, so the package remains usable as a dependency.
#   -target-cpu native            let the compiler use every instruction this CPU has (AVX-512, FMA, ...)
#   -DMINIDL_AVX512 / MINIDL_AVX2  pick Framework's kernel shape for that CPU (Sources/Framework/Kernels/KernelVariant.swift)
#   -DMINIDL_NATIVE_CPU           lets `bench` report that the build targeted the host CPU
#   --export-dynamic-symbol=...   lets `bench` count heap allocations (Sources/CAllocationCounter)
# OPENBLAS_CORETYPE (default SkylakeX on AVX-512 machines) and OPENBLAS_NUM_THREADS=1 apply to an OpenBLAS that
# serves GSL's cblas in `run` and that `bench` loads for comparison; override them on the command line.

SHELL := /bin/bash
SWIFT ?= swift
PYTHON ?= python3
ARGS ?=
FUZZ_SECONDS ?= 60
NATIVE ?= 1

CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
ifneq ($(filter avx512f,$(CPU_FLAGS)),)
  KERNEL_DEFINE := -Xswiftc -DMINIDL_AVX512
  OPENBLAS_CORETYPE ?= SkylakeX
else ifneq ($(and $(filter avx2,$(CPU_FLAGS)),$(filter fma,$(CPU_FLAGS))),)
  KERNEL_DEFINE := -Xswiftc -DMINIDL_AVX2
endif
NATIVE_FLAGS := -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DMINIDL_NATIVE_CPU $(KERNEL_DEFINE)
COUNTING_MALLOC := $(foreach f,malloc calloc realloc memalign aligned_alloc posix_memalign,-Xlinker --export-dynamic-symbol=$(f))
BLAS_ENV := OPENBLAS_NUM_THREADS=1 $(if $(OPENBLAS_CORETYPE),OPENBLAS_CORETYPE=$(OPENBLAS_CORETYPE))
RUN_FLAGS := $(if $(filter 1,$(NATIVE)),--scratch-path .build-native $(NATIVE_FLAGS))

.PHONY: run test test-native deps test-deps sanitize fuzz bench bench-portable bench-torch mutate coverage suite-build-flags

deps:
	@scripts/ensure-gsl.sh

# The tests also run the example NumPy engine (examples/engines/numpy_engine.py).
test-deps: deps
	@scripts/ensure-numpy.sh

# Built through a pipe, then run: `swift run` rebuilt everything (105–117 s) whenever its output switched between
# a terminal and a pipe, because SwiftPM adds colour flags on a terminal and that changes the build.
run: deps
	@set -o pipefail; $(SWIFT) build -c release $(RUN_FLAGS) --product compare 2>&1 | cat >&2
	@$(BLAS_ENV) "$$($(SWIFT) build -c release $(RUN_FLAGS) --show-bin-path)/compare" $(ARGS)

# Release with -enable-testing: the kernels are generic over their SIMD variant and the tests run all three
# variants in one build, which a debug build would run unspecialised (tens of times slower). SUITE_BUILD_FLAGS is
# the build alone; scripts/mutate.py and scripts/coverage.sh read it with `make -s suite-build-flags`.
SUITE_BUILD_FLAGS := -c release -Xswiftc -enable-testing
TEST_FLAGS := $(SUITE_BUILD_FLAGS) --disable-swift-testing

suite-build-flags:
	@echo $(SUITE_BUILD_FLAGS)

test: test-deps
	$(SWIFT) test $(TEST_FLAGS)

# Framework's tests again in the host-CPU build that `make run` ships (its own scratch folder): the products are
# tested at every SIMD width in every build, but the activations' lane code is compiled at the build's width only.
# .ci/run runs it after `make test`; on a CPU without AVX2+FMA or AVX-512 the portable build is what `make run` ships.
test-native: test-deps
ifneq ($(KERNEL_DEFINE),)
	$(SWIFT) test $(TEST_FLAGS) --scratch-path .build-native-tests $(NATIVE_FLAGS) --filter FrameworkTests
else
	@echo "test-native: no AVX2+FMA or AVX-512 here; make test's portable build is the one make run ships"
endif

# Each sanitizer builds into its own scratch folder (docs/hardening.md). ASan: the suite, then `compare`
# and the fuzz target's replay with LeakSanitizer on (off for XCTest, which keeps its test cases to exit);
# allocator_may_return_null lets malloc return NULL for an impossible size, as glibc does, which a Reference
# test relies on. TSan: `compare` runs rounds in parallel (DispatchQueue.concurrentPerform); halt_on_error
# turns any report into a failure.
SMALL_EXPERIMENTS = --experiment fuzz/corpus/explicit-bce.json --experiment fuzz/corpus/minimal.json \
  --experiment fuzz/corpus/divergence.json --experiment fixtures/pytorch/torch-2.experiment.json
ASAN = ASAN_OPTIONS=allocator_may_return_null=1
TSAN = TSAN_OPTIONS=halt_on_error=1

sanitize: test-deps
	$(ASAN):detect_leaks=0 $(SWIFT) test $(TEST_FLAGS) --sanitize=address --scratch-path .build-asan
	$(ASAN) .build-asan/release/compare $(SMALL_EXPERIMENTS) --rounds 4 --json .build-asan/report.json \
	  --csv .build-asan/csv --plots .build-asan/plots > /dev/null
	$(ASAN) .build-asan/release/compare merge .build-asan/report.json > /dev/null
	$(ASAN) .build-asan/release/compare record --mode all --fixtures .build-asan/fixtures > /dev/null
	$(ASAN) .build-asan/release/FuzzExperiment fuzz/corpus fixtures/pytorch
	$(SWIFT) build -c release --sanitize=thread --scratch-path .build-tsan --product compare
	$(TSAN) .build-tsan/release/compare $(SMALL_EXPERIMENTS) --rounds 8 --json .build-tsan/report.json \
	  --csv .build-tsan/csv --plots .build-tsan/plots > /dev/null
	$(TSAN) .build-tsan/release/compare --suite default --epochs 1 --rounds 4 > /dev/null

# libFuzzer with AddressSanitizer; new inputs go to .build-fuzz/corpus, crashes to .build-fuzz/crash-*.
# Seeds: fuzz/corpus and the PyTorch experiment files.
fuzz: deps
	$(SWIFT) build -c release --product FuzzExperiment --scratch-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	mkdir -p .build-fuzz/corpus
	cp fuzz/corpus/*.json fixtures/pytorch/*.experiment.json .build-fuzz/corpus/
	.build-fuzz/release/FuzzExperiment .build-fuzz/corpus -dict=fuzz/experiment.dict -max_len=150000 \
	  -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -artifact_prefix=.build-fuzz/ -print_final_stats=1

bench: deps
	$(BLAS_ENV) $(SWIFT) run -c release --scratch-path .build-native $(NATIVE_FLAGS) $(COUNTING_MALLOC) bench $(ARGS)

bench-portable: deps
	$(BLAS_ENV) $(SWIFT) run -c release --scratch-path .build-portable $(COUNTING_MALLOC) bench $(ARGS)

bench-torch:
	$(PYTHON) scripts/bench_torch.py $(ARGS)

# Not part of CI (about 75 minutes on 2 cores for all 105 mutants): each mutant is a rebuild plus the tests that can
# see its module (README, "Mutation run").
# MUTANTS (a make variable, exported to the script) selects mutants by id pattern.
mutate: test-deps
	$(PYTHON) scripts/mutate.py

coverage: test-deps
	scripts/coverage.sh
