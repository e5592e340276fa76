# shardkv: `make run` starts a local cluster, `make test` runs every test.

GO    ?= go
BIN   := bin
DATA  := data
CMDS  := ./cmd/shardkv-node ./cmd/shardkv-proxy ./cmd/shardkv
# VERSION stamps the binaries' --version (make build VERSION=0.3.0); empty
# keeps internal/version's.
VERSION ?=
LDFLAGS := $(if $(VERSION),-ldflags "-X github.com/shardkv/shardkv/internal/version.Version=$(VERSION)")

.PHONY: all build run test fmt fmt-check vet bench clean

all: build

## build: compile bin/shardkv-node, bin/shardkv-proxy and bin/shardkv
build:
	$(GO) build $(LDFLAGS) -o $(BIN)/ $(CMDS)

## run: build, then run three shard nodes (127.0.0.1:7001-7003) and a proxy
## (127.0.0.1:6380) in the foreground from the embedded default map; Ctrl-C
## stops them; the data stays in ./data for the next run; METRICS=HOST:PORT
## serves the proxy's Prometheus metrics there and the nodes' on the next ports
run: build
	./$(BIN)/shardkv cluster --data $(DATA) $(if $(METRICS),--metrics-addr $(METRICS))

## test: gofmt check, go vet, and every test with the race detector (unit,
## fuzz seed corpora, and the end-to-end suite in integration/)
# -count=1: integration/ builds the binaries in a subprocess, which Go's test
# cache cannot see, so a cached pass could hide a broken server. -timeout:
# the integration package takes about 8 minutes on a quiet 2-core machine,
# close to go test's default limit of 10 on a loaded one.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 30m ./...

## fmt: format every Go file in place
fmt:
	gofmt -w .

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then \
		echo "gofmt: these files need formatting (run make fmt):"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## bench: redis-benchmark against shardkv, twemproxy and redis-server (issue 5)
## and 1,000 connections with one command in flight each (issue 12);
## BASELINE=REV adds rows of git revision REV's binaries in the same run,
## BENCH_QUICK=1 only checks the harness (about a minute)
bench: build
	./scripts/bench.sh

## clean: remove the binaries (the data in ./data is kept; rm -rf data to wipe it)
clean:
	rm -rf $(BIN)
