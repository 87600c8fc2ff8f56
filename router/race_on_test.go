//go:build race

package router

// raceEnabled: the race detector adds allocations of its own, so the
// allocation pins are checked only without it (make test-allocs).
const raceEnabled = true
