# The two commands of the README:
#   make run   build standin and start the server with the embedded defaults
#   make test  run the whole test suite (what CI runs)

GO      ?= go
BIN     := bin/standin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test vet fuzz bench deps runsc e2e-deps

deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: https://go.dev/doc/install"; exit 1; }
	$(GO) mod download

build: deps runsc
	$(GO) build -ldflags "-X main.Version=$(VERSION)" -o $(BIN) ./cmd/standin

# runsc (gVisor) runs the sandboxes. It is built from the Go module proxy at the
# version pinned in tools/runsc/go.mod, a module of its own so that the main
# module does not carry its dependencies; rebuilt only when that pin changes.
# CGO_ENABLED=0: runsc is meant to be a static binary.
runsc: bin/runsc

bin/runsc: tools/runsc/go.mod tools/runsc/go.sum
	cd tools/runsc && CGO_ENABLED=0 $(GO) build -o ../../bin/runsc gvisor.dev/gvisor/runsc

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
