//go:build race

package cache

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation budgets are checked only without it.
const raceEnabled = true
