package metrics

import (
	"fmt"
	"sync"
	"testing"
)

// The first max values seen keep their indexes; later ones, from any
// number of goroutines, are Other; an allow-list admits nothing else.
func TestLabelSet(t *testing.T) {
	s := newLabelSet(nil, 3, "none")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				s.lookup(fmt.Sprint(g*100 + i))
			}
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for i := range 1000 {
		seen[s.lookup(fmt.Sprint(i))] = true
	}
	if len(seen) != 4 || !seen[3] || s.name(3) != Other || s.lookup("") != 3 {
		t.Errorf("indexes %v, want 0..2 and Other (3)", seen)
	}
	for i := range 3 {
		if j := s.lookup(s.name(i)); j != i {
			t.Errorf("%q: index %d, want %d", s.name(i), j, i)
		}
	}
	a := newLabelSet([]string{"x", "y", "x"}, 10, "default")
	if a.size != 3 || a.lookup("y") != 1 || a.lookup("z") != 2 || a.lookup("") != 2 || a.name(2) != Other {
		t.Errorf("allow-list: size %d, y %d, z %d", a.size, a.lookup("y"), a.lookup("z"))
	}
	r := newLabelSet(nil, 2, "none")
	if i := r.lookup("Bearer sk-abcdefghijklmnopqrstu"); r.name(i) == "Bearer sk-abcdefghijklmnopqrstu" || r.lookup("Bearer sk-abcdefghijklmnopqrstu") != i {
		t.Errorf("a secret is exported as %q", r.name(i))
	}
}
