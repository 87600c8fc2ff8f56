package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type benchConfig struct {
	Concurrency      []int
	Warmup, Duration time.Duration
	CPUProfile       string
}

// The bodies: the seed's short prompt, as the OpenAI adapter sends it to
// the provider, and as a caller sends it to the service.
var (
	openAIBody = []byte(`{"messages":[{"content":"简单提示词","role":"user"}],"model":"gpt-4o-mini"}`)
	uncached   = []byte(`{"prompt":"简单提示词"}`)
	cached     = []byte(`{"prompt":"简单提示词","temperature":0}`)
)

// runBench builds the service and the mock, starts them and the proxy,
// measures every target at every concurrency and writes the table to w.
func runBench(ctx context.Context, w io.Writer, cfg benchConfig) error {
	dir, err := os.MkdirTemp("", "llmkit-e2ebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "e2ebench: building the service and the mock")
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"github.com/llmkit/llmkit/examples/service", "github.com/llmkit/llmkit/examples/drill/mock")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	mockAddr, svcAddr, proxyAddr, pprofAddr, adapterAddr := ports[0], ports[1], ports[2], ports[3], ports[4]
	mockURL := "http://" + mockAddr

	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	startAndWait := func(name, url string, env []string, bin string, args ...string) error {
		p, err := startProc(dir, name, env, bin, args...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		return p.waitHTTP(ctx, url, 30*time.Second)
	}
	if err := startAndWait("mock", mockURL+"/fault", nil, filepath.Join(dir, "mock"), "-addr", mockAddr); err != nil {
		return err
	}
	if err := startAndWait("service", "http://"+svcAddr+"/healthz", []string{
		"LISTEN_ADDR=" + svcAddr, "PPROF_ADDR=" + pprofAddr, "LOG_LEVEL=warn",
		"OPENAI_BASE_URL=" + mockURL + "/v1", "OPENAI_API_KEY=sk-bench-not-a-real-key",
	}, filepath.Join(dir, "service")); err != nil {
		return err
	}
	if err := startAndWait("proxy", "http://"+proxyAddr+"/fault", nil, self,
		"-role", "proxy", "-listen", proxyAddr, "-upstream", mockURL); err != nil {
		return err
	}
	if err := startAndWait("adapter", "http://"+adapterAddr+"/healthz", nil, self,
		"-role", "adapter", "-listen", adapterAddr, "-upstream", mockURL); err != nil {
		return err
	}

	targets := []target{
		{"direct", mockURL + "/v1/chat/completions", openAIBody},
		{"proxy", "http://" + proxyAddr + "/v1/chat/completions", openAIBody},
		{"adapter", "http://" + adapterAddr + "/generate", uncached},
		{"service", "http://" + svcAddr + "/generate", uncached},
		{"cached", "http://" + svcAddr + "/generate", cached},
	}
	// The cached target must hit: ask until an answer says it came from
	// the cache (ristretto may drop the first write), a bounded number of
	// times.
	for i := 0; ; i++ {
		err := checkCached(ctx, targets[4])
		if err == nil {
			break
		}
		if !errors.Is(err, errNotCached) || i == 50 {
			return err
		}
	}

	rows := make([]row, 0, len(cfg.Concurrency))
	for _, c := range cfg.Concurrency {
		r := row{Concurrency: c, Results: map[string]result{}}
		for _, tg := range targets {
			var prof chan []byte
			if cfg.CPUProfile != "" && tg.Name == "service" && c == cfg.Concurrency[len(cfg.Concurrency)-1] {
				prof = make(chan []byte, 1)
				go func() {
					b, err := fetch(ctx, "http://"+pprofAddr+"/debug/pprof/profile?seconds="+strconv.Itoa(int(cfg.Duration/time.Second)))
					if err != nil {
						fmt.Fprintln(os.Stderr, "e2ebench: cpu profile:", err)
					}
					prof <- b
				}()
			}
			res, err := measure(ctx, tg, c, cfg.Warmup, cfg.Duration)
			if err != nil {
				return fmt.Errorf("concurrency %d: %w", c, err)
			}
			fmt.Fprintf(os.Stderr, "e2ebench: c=%-3d %-8s %8.0f req/s  p50 %v  p99 %v\n", c, tg.Name, res.RPS(), res.P50, res.P99)
			r.Results[tg.Name] = res
			if prof != nil {
				if b := <-prof; len(b) > 0 {
					if err := os.WriteFile(cfg.CPUProfile, b, 0o644); err != nil {
						return err
					}
				}
			}
		}
		rows = append(rows, r)
	}
	writeTable(w, rows, cfg)
	return nil
}

// row is one concurrency level's results by target name.
type row struct {
	Concurrency int
	Results     map[string]result
}

func writeTable(w io.Writer, rows []row, cfg benchConfig) {
	fmt.Fprintf(w, "Machine: %s, %d CPUs, %s/%s, %s. Each cell: %v measured after %v of warmup.\n\n",
		cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), cfg.Duration, cfg.Warmup)
	fmt.Fprintln(w, "| concurrency | direct req/s, p50 | proxy req/s, p50 (+added) | adapter req/s, p50 (+added) | service req/s (× proxy, × adapter), p50 (+added) | cached req/s (× direct), p50 (+added) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rows {
		d, p, a, s, c := r.Results["direct"], r.Results["proxy"], r.Results["adapter"], r.Results["service"], r.Results["cached"]
		added := func(x result) string { return fmt.Sprintf("%s (%+d µs)", us(x.P50), (x.P50 - d.P50).Microseconds()) }
		fmt.Fprintf(w, "| %d | %.0f, %s | %.0f, %s | %.0f, %s | %.0f (%.2f×, %.2f×), %s | %.0f (%.2f×), %s |\n",
			r.Concurrency, d.RPS(), us(d.P50), p.RPS(), added(p), a.RPS(), added(a),
			s.RPS(), s.RPS()/p.RPS(), s.RPS()/a.RPS(), added(s), c.RPS(), c.RPS()/d.RPS(), added(c))
	}
}

func us(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) + " µs" }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// proc is a process the bench started; stop ends it by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to the process, and SIGKILL after 10 s.
func (p *proc) stop() {
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitHTTP polls url until it answers 200, at most limit.
func (p *proc) waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := fetch(ctx, url)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it answered %s", p.name, url)
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer %s within %v: %w", p.name, url, limit, err)
		case <-tick.C:
		}
	}
}

// freePorts reserves n loopback ports at once and releases them for the
// processes to take.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

var errNotCached = errors.New("cached: the service did not answer from its cache")

// httpClient makes the bench's own setup calls.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// checkCached posts tg once more and checks the service says the answer
// came from its cache.
func checkCached(ctx context.Context, tg target) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, bytes.NewReader(tg.Body))
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(`"cached":true`)) {
		return fmt.Errorf("%w: %s", errNotCached, b)
	}
	return nil
}
