# The project's commands. `make run` and `make test` are the README's quick start; each first makes sure
# GSL is installed (scripts/ensure-gsl.sh installs libgsl-dev with apt-get when pkg-config cannot find it).
#
#   make run ARGS="--suite seeds"   the main job: `compare`, release build
#   make test                       the whole XCTest suite (what .ci/run runs)
#   make sanitize                   the suite under AddressSanitizer, parallel rounds under ThreadSanitizer
#   make fuzz FUZZ_SECONDS=600      libFuzzer on experiment files (docs/hardening.md)

SWIFT ?= swift
ARGS ?=
FUZZ_SECONDS ?= 60

.PHONY: run test deps sanitize fuzz

deps:
	@scripts/ensure-gsl.sh

run: deps
	$(SWIFT) run -c release compare $(ARGS)

test: deps
	$(SWIFT) test --disable-swift-testing

# Each sanitizer builds into its own scratch folder (docs/hardening.md). ASan: the suite, then `compare`
# and the fuzz target's replay with LeakSanitizer on (off for XCTest, which keeps its test cases to exit);
# allocator_may_return_null lets malloc return NULL for an impossible size, as glibc does, which a Reference
# test relies on. TSan: `compare` runs rounds in parallel (DispatchQueue.concurrentPerform); halt_on_error
# turns any report into a failure.
SMALL_EXPERIMENTS = --experiment fuzz/corpus/explicit-bce.json --experiment fuzz/corpus/minimal.json \
  --experiment fuzz/corpus/divergence.json --experiment fixtures/pytorch/torch-2.experiment.json
ASAN = ASAN_OPTIONS=allocator_may_return_null=1
TSAN = TSAN_OPTIONS=halt_on_error=1

sanitize: deps
	$(ASAN):detect_leaks=0 $(SWIFT) test --disable-swift-testing --sanitize=address --scratch-path .build-asan
	$(ASAN) .build-asan/debug/compare $(SMALL_EXPERIMENTS) --rounds 4 --json .build-asan/report.json \
	  --csv .build-asan/csv --plots .build-asan/plots > /dev/null
	$(ASAN) .build-asan/debug/compare merge .build-asan/report.json > /dev/null
	$(ASAN) .build-asan/debug/compare record --mode all --fixtures .build-asan/fixtures > /dev/null
	$(ASAN) .build-asan/debug/FuzzExperiment fuzz/corpus fixtures/pytorch
	$(SWIFT) build --sanitize=thread --scratch-path .build-tsan --product compare
	$(TSAN) .build-tsan/debug/compare $(SMALL_EXPERIMENTS) --rounds 8 --json .build-tsan/report.json \
	  --csv .build-tsan/csv --plots .build-tsan/plots > /dev/null
	$(TSAN) .build-tsan/debug/compare --suite default --epochs 1 --rounds 4 > /dev/null

# libFuzzer with AddressSanitizer; new inputs go to .build-fuzz/corpus, crashes to .build-fuzz/crash-*.
# Seeds: fuzz/corpus and the PyTorch experiment files.
fuzz: deps
	$(SWIFT) build -c release --product FuzzExperiment --scratch-path .build-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	mkdir -p .build-fuzz/corpus
	cp fuzz/corpus/*.json fixtures/pytorch/*.experiment.json .build-fuzz/corpus/
	.build-fuzz/release/FuzzExperiment .build-fuzz/corpus -dict=fuzz/experiment.dict -max_len=150000 \
	  -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -artifact_prefix=.build-fuzz/ -print_final_stats=1
