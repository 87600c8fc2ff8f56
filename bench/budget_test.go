package bench_test

// The allocation budgets TestStackAllocs enforces for one call through the
// whole recommended stack. DESIGN.md's target for a miss is 10; see
// BENCHMARKS.md for where each allocation comes from.
const (
	missBudget = 13
	hitBudget  = 6
)
