package queue_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// workerBin is the worker program (internal/testworker) the process tests
// start, built once, on first use, into a directory TestMain removes.
var workerBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llmkit-queue-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin.dir = dir
	code := m.Run()
	if code == 0 {
		// modernc's SQLite and pgx keep no goroutines after Close; River's
		// are stopped by Run's return. database/sql's opener may outlive
		// a test that ends while a Close is in flight.
		if err := goleak.Find(goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// workerBinary builds internal/testworker once, with `go build` and
// without the race detector even when the tests run under it (see the
// program's documentation for why), and returns its path.
func workerBinary(t *testing.T) string {
	t.Helper()
	workerBin.once.Do(func() {
		workerBin.path = filepath.Join(workerBin.dir, "testworker")
		// -race=false overrides a -race in GOFLAGS; go test puts its own
		// GOROOT/bin first on the PATH, so this is the same toolchain.
		cmd := exec.Command("go", "build", "-race=false", "-o", workerBin.path, "./internal/testworker")
		if out, err := cmd.CombinedOutput(); err != nil {
			workerBin.err = fmt.Errorf("go build ./internal/testworker: %v\n%s", err, out)
		}
	})
	if workerBin.err != nil {
		t.Fatal(workerBin.err)
	}
	return workerBin.path
}
