package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// chromium finds the headless browser the Debian package "chromium"
// installs: a test that needs it skips without CI and fails with CI.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (Debian package chromium); CI must have it")
	}
	t.Skip("chromium is not installed (Debian package chromium)")
	return ""
}

// The HTML report opens in a real browser with nothing from the network
// and every plot decodes: the page's own script marks each <img> once the
// browser has drawn it, and --dump-dom shows the marks.
func TestReportRendersInChromium(t *testing.T) {
	bin := chromium(t)
	srv, _ := fakeService(t)
	cfg := testConfig(t, srv.URL)
	cfg.Profile, cfg.SweepRates, cfg.SLO, cfg.StepDuration, cfg.Requests = "sweep", []float64{200, 400}, slo{E2E: 5 * time.Second}, 300*time.Millisecond, 1000
	cfg.SLOTarget, cfg.Concurrency = 0.8, 64 // every tenth answer is a 429
	var out bytes.Buffer
	if code, err := run(context.Background(), &out, cfg); code != exitMet {
		t.Fatalf("exit %d: %v\n%s", code, err, out.String())
	}
	page := filepath.Join(cfg.Out, "report.html")
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?i)(src|href)=["']?(https?:)?//`).Match(html) {
		t.Fatal("the report loads something from the network")
	}
	plots := bytes.Count(html, []byte(`<img class="plot"`))
	// timeline, e2e and ttft by class, sweep throughput and latency
	if plots != 5 {
		t.Fatalf("%d plots in the report, want 5", plots)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", "file://"+page)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dom, err := cmd.Output() // waits for the process, which exits by itself; ctx kills it otherwise
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	rendered := bytes.Count(dom, []byte(`data-rendered="true"`))
	if rendered != plots {
		t.Fatalf("%d of %d plots rendered in chromium; failed: %d\n%s", rendered, plots,
			bytes.Count(dom, []byte(`data-rendered="false"`)), stderr.String())
	}
}
