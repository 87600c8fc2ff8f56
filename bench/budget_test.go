package bench_test

// The allocation budgets TestStackAllocs enforces for one call through the
// whole recommended stack (DESIGN.md: at most 10 for a miss); see
// BENCHMARKS.md for where each allocation comes from.
const (
	missBudget = 7
	hitBudget  = 3
)
