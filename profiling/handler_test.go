package profiling

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

func get(t *testing.T, srv *httptest.Server, path, token string) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func newServer(t *testing.T, opts ...HandlerOption) *httptest.Server {
	t.Helper()
	h, err := Handler(opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestHandlerToken(t *testing.T) {
	srv := newServer(t, Token("s3cret"))
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"s3cret-but-longer", 401}, {"s3cret", 200}} {
		resp, _ := get(t, srv, "/debug/pprof/", tc.token)
		if resp.StatusCode != tc.want {
			t.Errorf("token %q: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
		if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	// The scheme is case-insensitive, the token is not.
	r, _ := http.NewRequest(http.MethodGet, srv.URL+"/debug/pprof/heap", nil)
	r.Header.Set("Authorization", "bearer s3cret")
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case scheme: %d", resp.StatusCode)
	}
	if _, err := Handler(Token("")); err == nil {
		t.Error("empty token accepted")
	}
}

func TestHandlerProfiles(t *testing.T) {
	srv := newServer(t)
	for _, name := range []string{"heap", "allocs", "goroutine", "block", "mutex", "threadcreate"} {
		resp, body := get(t, srv, "/debug/pprof/"+name, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", name, resp.StatusCode, body)
		}
		if _, err := profile.ParseData(body); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	resp, body := get(t, srv, "/debug/pprof/goroutine?debug=1", "")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !bytes.Contains(body, []byte("goroutine profile:")) {
		t.Fatalf("goroutine?debug=1: %s %.80q", resp.Header.Get("Content-Type"), body)
	}
	if _, body := get(t, srv, "/debug/pprof/heap?gc=1", ""); len(body) == 0 {
		t.Fatal("heap?gc=1 empty")
	}
	resp, body = get(t, srv, "/debug/pprof/", "")
	for _, want := range []string{"heap", "goroutine", "profile", "trace", "cmdline"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Fatalf("index lacks %q: %s", want, body)
		}
	}
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	for path, want := range map[string]int{
		"/debug/pprof/nosuch":             404,
		"/debug/pprof/heap?seconds=1":     400,
		"/debug/pprof/profile?seconds=-1": 400,
		"/debug/pprof/profile?seconds=61": 400,
		"/debug/pprof/trace?seconds=x":    400,
		"/other":                          404,
	} {
		if resp, _ := get(t, srv, path, ""); resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestHandlerCPUProfileAndTrace(t *testing.T) {
	srv := newServer(t, Prefix("/pp/"))
	resp, body := get(t, srv, "/pp/profile?seconds=0.2", "")
	if resp.StatusCode != 200 {
		t.Fatalf("profile: %d %s", resp.StatusCode, body)
	}
	if _, err := profile.ParseData(body); err != nil {
		t.Fatalf("profile: %v", err)
	}
	resp, body = get(t, srv, "/pp/trace?seconds=0.1", "")
	if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte("go 1.")) {
		t.Fatalf("trace: %d, %d bytes %.16q", resp.StatusCode, len(body), body)
	}
	// Only one CPU profile per process: a second one is refused, not mixed.
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Fatal(err)
	}
	resp, _ = get(t, srv, "/pp/profile?seconds=0.1", "")
	pprof.StopCPUProfile()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("profile while another runs: %d, want 409", resp.StatusCode)
	}
}

func TestHandlerCmdlineAndSymbol(t *testing.T) {
	srv := newServer(t)
	_, body := get(t, srv, "/debug/pprof/cmdline", "")
	if !bytes.HasPrefix(body, []byte(os.Args[0])) {
		t.Fatalf("cmdline %q does not start with %q", body, os.Args[0])
	}
	pc := reflect.ValueOf(TestHandlerCmdlineAndSymbol).Pointer()
	_, body = get(t, srv, fmt.Sprintf("/debug/pprof/symbol?%#x", pc), "")
	want := fmt.Sprintf("%#x %s\n", pc, runtime.FuncForPC(pc).Name())
	if !strings.Contains(string(body), want) || !strings.HasPrefix(string(body), "num_symbols: 1\n") {
		t.Fatalf("symbol: %q, want %q", body, want)
	}
	resp, err := srv.Client().Post(srv.URL+"/debug/pprof/symbol", "text/plain", strings.NewReader(fmt.Sprintf("%#x+%#x", pc, pc)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Count(string(body), want) != 2 {
		t.Fatalf("symbol POST: %q", body)
	}
}

func TestHandlerOptionErrors(t *testing.T) {
	for name, o := range map[string]HandlerOption{
		"Prefix no slash": Prefix("debug"), "Prefix no trailing": Prefix("/debug"), "MaxSeconds(0)": MaxSeconds(0),
	} {
		if _, err := Handler(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDefaultServeMuxServesNothingOfOurs(t *testing.T) {
	if _, err := Handler(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile"} {
		rec := httptest.NewRecorder()
		http.DefaultServeMux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("DefaultServeMux %s: %d, want 404", path, rec.Code)
		}
	}
}

// TestNoNetHTTPPprof checks that no library package pulls in
// net/http/pprof, whose init registers on http.DefaultServeMux.
func TestNoNetHTTPPprof(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	// The go command of the toolchain running the test; go test sets
	// GOROOT for it.
	//lint:ignore SA1019 the test runs on the machine that built it
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	root := ".." // the module root
	out, err := exec.Command(goBin, "list", "-C", root, "-e", "github.com/llmkit/llmkit/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(p, "/examples/") && !strings.HasSuffix(p, "/examples") {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 || !slices.Contains(pkgs, "github.com/llmkit/llmkit/profiling") {
		t.Fatalf("go list found %v", pkgs)
	}
	cmd := exec.Command(goBin, append([]string{"list", "-C", root, "-e", "-deps"}, pkgs...)...)
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "runtime/pprof") {
		t.Fatalf("go list -deps output implausible (%d packages, no runtime/pprof)", len(deps))
	}
	if slices.Contains(deps, "net/http/pprof") {
		t.Fatal("a library package imports net/http/pprof")
	}
}
