# writ — make help lists the targets.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME      ?= 30s
BENCHTIME     ?= 1s
CHAOS_DURATION ?= 2m
DEVDIR        ?= .writ-dev
BIN           := bin/writ
SPIRE_DIR     := internal/tools/spire
SPIRE_BIN     ?= bin/spire

.DEFAULT_GOAL := help

.PHONY: help
help: ## List targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Download Go modules
	$(GO) mod download

.PHONY: build
build: ## Build bin/writ
	$(GO) build -o $(BIN) ./cmd/writ

.PHONY: run
run: build ## Start a single-node dev issuer (dev trust domain in ./.writ-dev)
	./$(BIN) dev --dir $(DEVDIR)

.PHONY: test
test: ## Run all tests with the race detector (what CI runs)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: spire
spire: $(SPIRE_BIN)/spire-server $(SPIRE_BIN)/spire-agent ## Build the pinned SPIRE server and agent into bin/spire (first build ~15 min, then cached)

$(SPIRE_BIN)/spire-%: $(SPIRE_DIR)/go.mod $(SPIRE_DIR)/go.sum
	cd $(SPIRE_DIR) && GOBIN=$(abspath $(SPIRE_BIN)) $(GO) install github.com/spiffe/spire/cmd/spire-$*
	@touch $@

.PHONY: test-spire
test-spire: spire build ## Run the tests against a real SPIRE deployment (they fail, not skip, here)
	WRIT_SPIRE_BIN=$(abspath $(SPIRE_BIN)) $(GO) test -race -count=1 -timeout 15m \
	  $$($(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | awk '/internal\/spiretest/ {print $$1}')

.PHONY: test-chaos
test-chaos: ## Long randomized fault run on a 5-node cluster (CHAOS_DURATION, default 2m; seed logged, WRIT_CHAOS_SEED replays)
	WRIT_CHAOS=1 WRIT_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -run '^TestChaos$$' -timeout 60m -v ./cluster/

.PHONY: bench
bench: ## Run the benchmarks named in the README (ratios from one run)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./verifier/ ./issuer/... ./attenuation/ ./cluster/ ./internal/credential/
	$(GO) test -run '^$$' -bench Failover -benchtime 10x ./cmd/writ/

.PHONY: bench-scale
bench-scale: ## Million-entry benchmarks: restart with 1M audit records and 1M revocations, 1M-revocation snapshot to a new verifier (~15 min, ~2 GB of temp disk)
	WRIT_BENCH_SCALE=1 $(GO) test -run '^$$' -bench '^(BenchmarkRestart|BenchmarkRestartRevocations|BenchmarkSyncSnapshot)$$' -benchmem -benchtime 1x -timeout 90m ./issuer/

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: lint
lint: ## gofmt, go vet, staticcheck (pinned)
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: clean
clean: ## Remove build output and the dev directory
	rm -rf bin $(DEVDIR)
