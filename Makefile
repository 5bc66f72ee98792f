# sharednothing — the two commands a new machine needs are `make demo` and `make test`.

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
PG_BIN      ?= /usr/lib/postgresql/15/bin

.PHONY: demo test check unit deps tools bench cluster faults

## demo: run the example app (starts its own throwaway PostgreSQL primary + replica)
demo:
	cd example && $(GO) run .

## test: formatting, vet, staticcheck, and every test with -race (needs PostgreSQL, nginx, chromium: installed when missing)
test: deps tools check unit

check: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd example && $(GO) vet ./... && $(STATICCHECK) ./...
	cd example && $(GO) vet -tags faults ./faults/ && $(STATICCHECK) -tags faults ./faults/
	cd bench && $(GO) vet ./... && $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 ./...
	cd example && $(GO) test -race -count=1 ./...
	cd bench && $(GO) test -count=1 -run . ./...

tools:
	@[ -x $(STATICCHECK) ] || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## deps: install the real servers the tests use (Debian) when they are missing
deps:
	@bash .ci/deps

## bench: run every benchmark (library and peer comparisons)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd bench && $(GO) test -run '^$$' -bench . -benchmem ./...

## cluster: PostgreSQL primary + replica, three app instances, nginx in front
cluster: deps
	cd example && $(GO) run ./cmd/cluster

## faults: the load and fault suite against the scaled-out cluster
faults: deps
	cd example && RELIABILITY_MD=$(CURDIR)/docs/RELIABILITY.md $(GO) test -tags faults -count=1 -v -timeout 15m ./faults/
