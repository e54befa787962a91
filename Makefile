# The project's commands. `make run` and `make test` are the README's quick start; each first makes sure
# GSL is installed (scripts/ensure-gsl.sh installs libgsl-dev with apt-get when pkg-config cannot find it).
#
#   make run ARGS="--suite seeds"   the main job: `compare`, release build
#   make test                       the whole XCTest suite (what .ci/run runs)

SWIFT ?= swift
ARGS ?=

.PHONY: run test deps

deps:
	@scripts/ensure-gsl.sh

run: deps
	$(SWIFT) run -c release compare $(ARGS)

test: deps
	$(SWIFT) test --disable-swift-testing
