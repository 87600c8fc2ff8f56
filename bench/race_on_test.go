//go:build race

package bench_test

// raceEnabled: the race detector makes sync.Pool drop items at random and
// adds allocations of its own, so allocation budgets are checked only
// without it.
const raceEnabled = true
