package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCPUProfile checks that -cpuprofile writes a pprof file (gzip) when
// given a path, and that without one nothing starts.
func TestCPUProfile(t *testing.T) {
	stop, err := startCPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	if stop, err = startCPUProfile(path); err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile %q: %d bytes, %v; want a gzip pprof file", path, len(b), err)
	}
	if _, err := startCPUProfile(filepath.Join(path, "not-a-dir", "cpu.pprof")); err == nil {
		t.Fatal("an unwritable path started a profile")
	}
}
