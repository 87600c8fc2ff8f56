package profiling

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func capAt(sec int, kind string, size int) Capture {
	return Capture{
		Time: time.Date(2025, 1, 2, 15, 4, sec, 0, time.UTC), Reason: ReasonSlow,
		Endpoint: "summarize", Model: "gpt-4o", Kind: kind, Data: bytes.Repeat([]byte("x"), size),
	}
}

func TestFileName(t *testing.T) {
	c := Capture{Time: time.Date(2025, 1, 2, 15, 4, 5, 123456789, time.FixedZone("X", 3600)),
		Reason: ReasonSlow, Endpoint: "../etc/pass wd", Model: "gpt-4o\x00", Kind: KindCPU}
	want := "llm_20250102T140405.123456789Z_slow_.._etc_pass_wd_gpt-4o_.pb.gz"
	if got := c.FileName(); got != want {
		t.Fatalf("FileName = %q, want %q", got, want)
	}
	c.Kind, c.Endpoint, c.Model = KindTrace, "", "m"
	if got := c.FileName(); got != "llm_20250102T140405.123456789Z_slow_none_m.trace" {
		t.Fatalf("FileName = %q", got)
	}
}

func TestDirSinkRotatesByCount(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "notes.txt")
	os.WriteFile(foreign, []byte("keep me"), 0o600)
	s, err := NewDirSink(dir, MaxFiles(3))
	if err != nil {
		t.Fatal(err)
	}
	for sec := range 5 {
		if err := s.Save(capAt(sec, KindTrace, 10)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := s.Files()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{capAt(2, KindTrace, 0).FileName(), capAt(3, KindTrace, 0).FileName(), capAt(4, KindTrace, 0).FileName()}
	if !slices.Equal(files, want) {
		t.Fatalf("files %v, want the 3 newest %v", files, want)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Fatalf("a file the sink did not write was touched: %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, want[0]))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", info.Mode(), err)
	}
}

func TestDirSinkRotatesBySize(t *testing.T) {
	s, err := NewDirSink(filepath.Join(t.TempDir(), "new", "dir"), MaxBytes(100))
	if err != nil {
		t.Fatal(err)
	}
	for sec := range 3 {
		if err := s.Save(capAt(sec, KindCPU, 40)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := s.Files()
	if len(files) != 2 || files[0] != capAt(1, KindCPU, 0).FileName() {
		t.Fatalf("files %v, want the 2 newest (80 of 100 bytes)", files)
	}
	if err := s.Save(capAt(9, KindCPU, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized capture: %v, want ErrTooLarge", err)
	}
	if files2, _ := s.Files(); !slices.Equal(files, files2) {
		t.Fatalf("refused capture changed the directory: %v", files2)
	}
}

func TestDirSinkOptionErrors(t *testing.T) {
	if _, err := NewDirSink(""); err == nil {
		t.Error("empty dir accepted")
	}
	if _, err := NewDirSink(t.TempDir(), MaxFiles(0)); err == nil {
		t.Error("MaxFiles(0) accepted")
	}
	if _, err := NewDirSink(t.TempDir(), MaxBytes(0)); err == nil {
		t.Error("MaxBytes(0) accepted")
	}
}
