# The targets CI runs. `make test` is the README's test command; .ci/run
# calls `make ci`, which is lint + test.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every module of the workspace (go.work): the library, the examples and the
# benchmarks. `./...` alone stops at a nested module's go.mod.
PKGS        ?= ./... ./examples/... ./bench/... ./queue/...

.PHONY: ci lint fmt vet staticcheck deploy-check test test-allocs bench demo drill

ci: lint deploy-check test

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run $(STATICCHECK) $(PKGS)

# promtool checks of the Prometheus config, rules and alert unit tests.
deploy-check:
	@if [ -x examples/deploy/check.sh ]; then examples/deploy/check.sh; fi

# Every test, with the race detector, after the allocation budgets. Tests
# that need Redis use LLMKIT_REDIS_ADDR (default 127.0.0.1:6379).
test: test-allocs
	$(GO) test -race -count=1 $(PKGS)

# The AllocsPerRun budgets, without the race detector: its instrumentation
# allocates on its own, so the pins skip under -race and are checked here
# (the whole stack's, per package, and ristretto's admission test).
test-allocs:
	$(GO) test -count=1 -run 'Allocs|Admission' $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

demo:
	$(GO) run ./examples/demo

# The operator's drill alone (docs/drill.md): three replicas behind nginx,
# Prometheus with the deploy rules, the seed's Locust users, an outage.
# `make test` runs it too; it needs nginx, prometheus, locust and Redis.
drill:
	$(GO) test -race -count=1 -run '^TestDrill$$' -v ./examples/drill/
