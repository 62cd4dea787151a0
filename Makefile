# The two commands of the README:
#   make run   build standin and start the server with the embedded defaults
#   make test  run the whole test suite (what CI runs)

GO      ?= go
BIN     := bin/standin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run build test vet fuzz bench deps

deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: https://go.dev/doc/install"; exit 1; }
	$(GO) mod download

build: deps
	$(GO) build -ldflags "-X main.Version=$(VERSION)" -o $(BIN) ./cmd/standin

run: build
	./$(BIN) serve

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

test: deps vet
	$(GO) test -count=1 ./...

# Short fuzz runs of every fuzz target (not part of test).
fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s $$p || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
