// Package bench measures llmkit's default stack (stack.New) against
// Reference, the stack a Go engineer would write by hand with the same
// layers (sony/gobreaker, a retry loop, context.WithTimeout, a sync.Map
// cache and the same client_golang metrics), in the same run and around
// the same instant provider.
//
// The budgets llmkit's default stack must meet, per call:
//
//   - a cache miss costs at most 1.3× the reference's instructions, and
//     allocates at most 12 times;
//   - a cache hit costs at most 3× the reference's instructions.
//
// Instructions, not nanoseconds, decide: nanoseconds move by ±30% on
// shared VMs, while callgrind's counts repeat within about 1%.
// callgrind.sh counts them and fails when a budget is exceeded;
// TestWholeStackAllocs pins the allocations. BENCHMARKS.md has the
// figures and the commands that produced them:
//
//	go test -run '^$' -bench WholeStack -benchmem -cpu 1,2 -benchtime 100000x ./bench/
//	bench/callgrind.sh
package bench
