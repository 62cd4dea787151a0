# The two commands of the README:
#   make run   build standin and start the server with the embedded defaults
#   make test  run the whole test suite (what CI runs)

GO      ?= go
BIN     := bin/standin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run build agent test vet fuzz bench deps runsc e2e-deps

deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: https://go.dev/doc/install"; exit 1; }
	$(GO) mod download

build: deps runsc
	$(GO) build -ldflags "-X main.Version=$(VERSION)" -o $(BIN) ./cmd/standin
	$(GO) build -trimpath -ldflags "-s -w" -o bin/standin-agent ./cmd/standin-agent

# The gVisor runtime runs bin/standin-agent (found next to bin/standin) as
# each sandbox's first process: an agent-only binary a sixth of standin's
# size starts faster under gVisor. Without it, standin runs itself as agent.
agent:
	$(GO) build -trimpath -ldflags "-s -w" -o bin/standin-agent ./cmd/standin-agent

# runsc (gVisor) runs the sandboxes. It is built from the Go module proxy at the
# version pinned in tools/runsc/go.mod, a module of its own so that the main
# module does not carry its dependencies; rebuilt only when that pin changes.
# CGO_ENABLED=0: runsc is meant to be a static binary.
#
# The Sentry's seccomp filter is precompiled into the binary, as gVisor's own
# Bazel build does (a `go build` of runsc has none and builds it at every
# sandbox start, about 60 ms of CPU): tools/runsc/seccompgen writes gVisor's
# filter_precompiled.go with the programs, swapped into a vendored copy of
# the sources in a scratch directory (the module cache cannot be
# overlaid). The first build compiles all of runsc again (minutes).
RUNSC_BUILD := bin/.runsc-build
runsc: bin/runsc

bin/runsc: tools/runsc/go.mod tools/runsc/go.sum tools/runsc/seccompgen/main.go
	rm -rf $(RUNSC_BUILD) && mkdir -p $(RUNSC_BUILD)
	cp tools/runsc/go.mod tools/runsc/go.sum $(RUNSC_BUILD)/ && cp -r tools/runsc/seccompgen $(RUNSC_BUILD)/
	cd $(RUNSC_BUILD) && $(GO) mod vendor
	cd $(RUNSC_BUILD) && CGO_ENABLED=0 $(GO) run -mod=vendor ./seccompgen > filter_precompiled.go
	mv $(RUNSC_BUILD)/filter_precompiled.go $(RUNSC_BUILD)/vendor/gvisor.dev/gvisor/runsc/boot/filter/filter_precompiled.go
	cd $(RUNSC_BUILD) && CGO_ENABLED=0 $(GO) build -mod=vendor -o runsc gvisor.dev/gvisor/runsc
	mv $(RUNSC_BUILD)/runsc bin/runsc && rm -rf $(RUNSC_BUILD)

# The e2e clients suite runs the official openai and Anthropic npm SDKs,
# pinned in e2e/clients/node/package-lock.json; npm ci installs them again
# only when package.json or the lockfile changes.
e2e-deps: e2e/clients/node/node_modules/.package-lock.json

e2e/clients/node/node_modules/.package-lock.json: e2e/clients/node/package.json e2e/clients/node/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the e2e clients suite: apt-get install nodejs npm"; exit 1; }
	npm ci --prefix e2e/clients/node --ignore-scripts --no-audit --no-fund

run: build
	./$(BIN) serve

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

# go test shows a passing package's output only with -v: the hostile-agent
# suite's summary line (attacks tried, stopped, leaks) is printed from the
# file it leaves in bin/.
test: deps vet runsc e2e-deps
	@rm -f bin/e2e-hostile-agent.txt
	$(GO) test -count=1 ./...; status=$$?; cat bin/e2e-hostile-agent.txt 2>/dev/null; exit $$status

# Short fuzz runs of every fuzz target (not part of test).
fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s $$p || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
