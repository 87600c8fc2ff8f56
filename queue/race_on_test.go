//go:build race

package queue_test

// raceEnabled reports whether the tests run under -race.
const raceEnabled = true
