package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startService builds examples/service and runs it on a free loopback
// port with the simulated model (50 ms to the first token, 5 ms a token),
// on one core so that it saturates at a rate this test reaches. The
// process is stopped by its PID when the test ends.
func startService(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the go tool is needed to build examples/service")
		}
		t.Skip("no go tool to build examples/service")
	}
	bin := filepath.Join(t.TempDir(), "service")
	build := exec.Command(gobin, "build", "-o", bin, "github.com/llmkit/llmkit/examples/service")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building examples/service: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR=127.0.0.1:0", "PPROF_ADDR=off", "LOG_LEVEL=info", "GOMAXPROCS=1",
		"OPENAI_API_KEY=", "OPENAI_BASE_URL=", "ANTHROPIC_API_KEY=", "REDIS_ADDR=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() { // the log, read to its end so the service never blocks on it
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "service listening" {
				select {
				case addr <- line.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case <-exited:
		t.Fatal("examples/service exited before it listened")
	case <-time.After(60 * time.Second):
		t.Fatal("examples/service did not listen within a minute")
	}
	return ""
}

// A rate sweep against the real service finds the rate where p99 time to
// first chunk crosses the SLO: the first steps meet it, the last misses
// it, and the report says at which rate.
func TestSweepFindsServiceTTFTLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and loads examples/service")
	}
	url := startService(t)
	cfg := testConfig(t, url)
	cfg.Profile, cfg.Arrivals, cfg.StreamShare, cfg.RepeatShare = "sweep", "poisson", 1, 0 // every call reaches the model
	cfg.SweepRates = []float64{10, 100, 400, 1600, 6400}
	cfg.StepDuration, cfg.Duration, cfg.Requests, cfg.Concurrency, cfg.Drain = 2*time.Second, time.Minute, 100_000, 4000, 5*time.Second
	// 20 times the model's own 50 ms: room for a busy CI machine at 10/s,
	// and still far below the seconds a saturated service queues for.
	cfg.SLO = slo{TTFT: time.Second}
	var out bytes.Buffer
	code, err := run(context.Background(), &out, cfg)
	if code != exitMet {
		t.Fatalf("exit %d (%v): the first step should meet the SLO\n%s", code, err, out.String())
	}
	r := readReport(t, cfg.Out)
	sw := r.Sweep
	if sw == nil || len(sw.Steps) < 2 {
		t.Fatalf("sweep: %+v\n%s", sw, out.String())
	}
	first := sw.Steps[0]
	if !first.SLO.Met || first.Latency["ttft"].N == 0 || first.Latency["ttft"].P99 > 1000 || first.Answered == 0 {
		t.Fatalf("at %g/s the service should answer within the SLO: %+v\n%s", first.Offered, first.Latency["ttft"], out.String())
	}
	if !sw.Crossed {
		t.Fatalf("no rate up to %g/s crossed p99 ttft 1s on one core\n%s", cfg.SweepRates[len(cfg.SweepRates)-1], out.String())
	}
	last := sw.Steps[len(sw.Steps)-1]
	// Missed: fewer than 99% of its requests were answered with a first
	// chunk within 1s (late, or not answered at all).
	if last.Offered != sw.CrossedAt || last.SLO.Met || last.SLO.Attainment >= 0.99 || sw.LastMet != sw.Steps[len(sw.Steps)-2].Offered {
		t.Fatalf("crossed at %g after %g, last step %+v", sw.CrossedAt, sw.LastMet, last.SLO)
	}
	if !strings.Contains(out.String(), "SLO missed at rate") {
		t.Fatalf("the summary does not say where the SLO broke:\n%s", out.String())
	}
	t.Logf("p99 ttft crossed 1s between %g/s and %g/s\n%s", sw.LastMet, sw.CrossedAt, out.String())
}
