package bench_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Both stacks may start goroutines (llmkit's cache store does); each
// benchmark and test closes what it built, and nothing may be left running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
