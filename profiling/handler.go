package profiling

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Defaults for Handler.
const (
	DefaultPrefix = "/debug/pprof/"
	// DefaultMaxSeconds caps ?seconds= on profile and trace.
	DefaultMaxSeconds = 60
)

// HandlerOption configures Handler.
type HandlerOption interface {
	applyHandler(*handlerConfig) error
}

type handlerOptionFunc func(*handlerConfig) error

func (f handlerOptionFunc) applyHandler(c *handlerConfig) error { return f(c) }

type handlerConfig struct {
	prefix     string
	tokenSum   *[sha256.Size]byte
	maxSeconds float64
}

// Token requires "Authorization: Bearer <token>" on every request; others
// get 401. Tokens are compared in constant time. An empty token is an
// error.
func Token(token string) HandlerOption {
	return handlerOptionFunc(func(c *handlerConfig) error {
		if token == "" {
			return errors.New("profiling: empty Token")
		}
		sum := sha256.Sum256([]byte(token))
		c.tokenSum = &sum
		return nil
	})
}

// Prefix sets the path the endpoints live under; it must start and end
// with "/". Default DefaultPrefix, the path `go tool pprof` expects.
func Prefix(p string) HandlerOption {
	return handlerOptionFunc(func(c *handlerConfig) error {
		if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
			return fmt.Errorf("profiling: Prefix %q must start and end with /", p)
		}
		c.prefix = p
		return nil
	})
}

// MaxSeconds caps the ?seconds= a profile or trace request may ask for.
// Default DefaultMaxSeconds.
func MaxSeconds(n int) HandlerOption {
	return handlerOptionFunc(func(c *handlerConfig) error {
		if n <= 0 {
			return errors.New("profiling: MaxSeconds must be positive")
		}
		c.maxSeconds = float64(n)
		return nil
	})
}

// Handler returns an http.Handler serving Go's profiles under the prefix
// (default "/debug/pprof/"), in the formats `go tool pprof` and
// `go tool trace` read:
//
//	/debug/pprof/              index
//	/debug/pprof/profile       CPU profile, ?seconds= (default 30)
//	/debug/pprof/trace         execution trace, ?seconds= (default 1)
//	/debug/pprof/heap          and allocs, goroutine, block, mutex,
//	                           threadcreate, or any pprof.Lookup name;
//	                           ?debug=1|2 for text, ?gc=1 (heap) to GC first
//	/debug/pprof/cmdline       the command line, secrets redacted
//	/debug/pprof/symbol        symbol lookup for pprof
//
// It is built on runtime/pprof and runtime/trace with a mux of its own;
// the package never imports net/http/pprof, whose init registers on
// http.DefaultServeMux. Block and mutex profiles are empty unless the
// program sets runtime.SetBlockProfileRate / SetMutexProfileFraction.
//
// Serve it on a loopback listener of its own, not the public mux (see the
// package example); add Token when the listener is reachable by others.
func Handler(opts ...HandlerOption) (http.Handler, error) {
	cfg := handlerConfig{prefix: DefaultPrefix, maxSeconds: DefaultMaxSeconds}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyHandler(&cfg); err != nil {
			return nil, err
		}
	}
	h := &pprofHandler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc(cfg.prefix, h.named)
	mux.HandleFunc(cfg.prefix+"profile", h.profile)
	mux.HandleFunc(cfg.prefix+"trace", h.trace)
	mux.HandleFunc(cfg.prefix+"cmdline", h.cmdline)
	mux.HandleFunc(cfg.prefix+"symbol", h.symbol)
	h.mux = mux
	return h, nil
}

type pprofHandler struct {
	cfg handlerConfig
	mux *http.ServeMux
}

func (h *pprofHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.tokenSum != nil && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pprof"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func (h *pprofHandler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(auth) <= len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return false
	}
	// Comparing digests keeps the time independent of the token's length.
	sum := sha256.Sum256([]byte(auth[len(scheme):]))
	return subtle.ConstantTimeCompare(sum[:], h.cfg.tokenSum[:]) == 1
}

func serveError(w http.ResponseWriter, status int, msg string) {
	w.Header().Del("Content-Disposition")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// seconds parses ?seconds=, defaulting to def and capped by MaxSeconds.
func (h *pprofHandler) seconds(r *http.Request, def float64) (time.Duration, error) {
	s := def
	if v := r.FormValue("seconds"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("bad seconds %q", v)
		}
		s = f
	}
	if s > h.cfg.maxSeconds {
		return 0, fmt.Errorf("seconds %v exceeds the limit of %v", s, h.cfg.maxSeconds)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// wait waits d or until the request is gone.
func wait(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func (h *pprofHandler) profile(w http.ResponseWriter, r *http.Request) {
	d, err := h.seconds(r, 30)
	if err != nil {
		serveError(w, http.StatusBadRequest, err.Error())
		return
	}
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		serveError(w, http.StatusConflict, "could not start CPU profile: "+err.Error())
		return
	}
	wait(r, d)
	pprof.StopCPUProfile()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	w.Write(buf.Bytes())
}

func (h *pprofHandler) trace(w http.ResponseWriter, r *http.Request) {
	d, err := h.seconds(r, 1)
	if err != nil {
		serveError(w, http.StatusBadRequest, err.Error())
		return
	}
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		serveError(w, http.StatusConflict, "could not start trace: "+err.Error())
		return
	}
	wait(r, d)
	trace.Stop()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	w.Write(buf.Bytes())
}

func (h *pprofHandler) named(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, h.cfg.prefix)
	if name == "" {
		h.index(w)
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		serveError(w, http.StatusNotFound, "unknown profile "+strconv.Quote(name))
		return
	}
	if r.FormValue("seconds") != "" {
		serveError(w, http.StatusBadRequest, "delta profiles (?seconds=) are not supported; take two and use pprof -diff_base")
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if name == "heap" && r.FormValue("gc") != "" {
		runtime.GC()
	}
	var buf bytes.Buffer
	if err := p.WriteTo(&buf, debug); err != nil {
		serveError(w, http.StatusInternalServerError, "writing profile: "+err.Error())
		return
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	w.Write(buf.Bytes())
}

func (h *pprofHandler) index(w http.ResponseWriter) {
	profiles := pprof.Profiles()
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name() < profiles[j].Name() })
	var b bytes.Buffer
	b.WriteString("<html><head><title>pprof</title></head><body><h1>Profiles</h1><table>\n")
	for _, p := range profiles {
		n := html.EscapeString(p.Name())
		fmt.Fprintf(&b, "<tr><td>%d</td><td><a href=\"%s?debug=1\">%s</a></td></tr>\n", p.Count(), n, n)
	}
	b.WriteString("<tr><td></td><td><a href=\"profile\">profile</a> (CPU, ?seconds=30)</td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"trace?seconds=1\">trace</a></td></tr>\n")
	b.WriteString("<tr><td></td><td><a href=\"cmdline\">cmdline</a></td></tr>\n")
	b.WriteString("</table></body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

func (h *pprofHandler) cmdline(w http.ResponseWriter, r *http.Request) {
	args := make([]string, len(os.Args))
	for i, a := range os.Args {
		args[i] = llm.Redact(a)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, strings.Join(args, "\x00"))
}

// symbol answers pprof's symbol lookups: the addresses come '+'-separated
// in a POST body or the query string; each known one is answered with
// "0x<addr> <function>".
func (h *pprofHandler) symbol(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var buf bytes.Buffer
	buf.WriteString("num_symbols: 1\n")
	var in io.Reader = strings.NewReader(r.URL.RawQuery)
	if r.Method == http.MethodPost {
		in = http.MaxBytesReader(w, r.Body, 1<<20)
	}
	br := bufio.NewReader(in)
	for {
		word, err := br.ReadSlice('+')
		if err == nil {
			word = word[:len(word)-1]
		}
		if pc, _ := strconv.ParseUint(string(word), 0, 64); pc != 0 {
			if f := runtime.FuncForPC(uintptr(pc)); f != nil {
				fmt.Fprintf(&buf, "%#x %s\n", pc, f.Name())
			}
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintf(&buf, "reading request: %v\n", err)
			}
			break
		}
	}
	w.Write(buf.Bytes())
}
