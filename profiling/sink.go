package profiling

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Defaults for NewDirSink.
const (
	DefaultMaxFiles = 20
	DefaultMaxBytes = 256 << 20
)

// ErrTooLarge is returned by DirSink.Save for a capture larger than the
// directory's size cap.
var ErrTooLarge = errors.New("profiling: capture larger than the sink's size cap")

// DirSink is a Sink that writes each capture to a file in a directory named
// by Capture.FileName, keeping at most MaxFiles of its files and at most
// MaxBytes in total by deleting the oldest. It only counts and deletes
// files it could have written (named "llm_*.trace" or "llm_*.pb.gz"), so
// it may share a directory. Files are written with mode 0600 and appear
// whole (written to a temporary name, then renamed).
type DirSink struct {
	dir      string
	maxFiles int
	maxBytes int64
	mu       sync.Mutex
}

var _ Sink = (*DirSink)(nil)

// DirOption configures NewDirSink.
type DirOption interface {
	applyDir(*DirSink) error
}

type dirOptionFunc func(*DirSink) error

func (f dirOptionFunc) applyDir(d *DirSink) error { return f(d) }

// MaxFiles keeps at most n capture files. Default DefaultMaxFiles.
func MaxFiles(n int) DirOption {
	return dirOptionFunc(func(d *DirSink) error {
		if n <= 0 {
			return errors.New("profiling: MaxFiles must be positive")
		}
		d.maxFiles = n
		return nil
	})
}

// MaxBytes keeps the capture files' total size at most n bytes. Default
// DefaultMaxBytes.
func MaxBytes(n int64) DirOption {
	return dirOptionFunc(func(d *DirSink) error {
		if n <= 0 {
			return errors.New("profiling: MaxBytes must be positive")
		}
		d.maxBytes = n
		return nil
	})
}

// NewDirSink returns a DirSink writing to dir, creating it (mode 0700) if
// needed.
func NewDirSink(dir string, opts ...DirOption) (*DirSink, error) {
	if dir == "" {
		return nil, errors.New("profiling: NewDirSink needs a directory")
	}
	d := &DirSink{dir: dir, maxFiles: DefaultMaxFiles, maxBytes: DefaultMaxBytes}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyDir(d); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("profiling: %w", err)
	}
	return d, nil
}

// Save writes c to a file and then deletes the oldest capture files beyond
// the bounds.
func (d *DirSink) Save(c Capture) error {
	if int64(len(c.Data)) > d.maxBytes {
		return fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, len(c.Data), d.maxBytes)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	name := filepath.Join(d.dir, c.FileName())
	tmp, err := os.CreateTemp(d.dir, ".tmp-capture-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(c.Data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return d.rotate()
}

// Files returns the names of the capture files in the directory, oldest
// first.
func (d *DirSink) Files() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	files, _, err := d.list()
	return files, err
}

func (d *DirSink) list() (names []string, sizes map[string]int64, err error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, nil, err
	}
	sizes = make(map[string]int64)
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, filePrefix) ||
			!(strings.HasSuffix(n, ".trace") || strings.HasSuffix(n, ".pb.gz")) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		names = append(names, n)
		sizes[n] = info.Size()
	}
	slices.Sort(names) // names start with a fixed-width UTC time
	return names, sizes, nil
}

func (d *DirSink) rotate() error {
	names, sizes, err := d.list()
	if err != nil {
		return err
	}
	var total int64
	for _, n := range names {
		total += sizes[n]
	}
	var errs []error
	for len(names) > 0 && (len(names) > d.maxFiles || total > d.maxBytes) {
		if err := os.Remove(filepath.Join(d.dir, names[0])); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		total -= sizes[names[0]]
		names = names[1:]
	}
	return errors.Join(errs...)
}
