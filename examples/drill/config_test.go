package drill

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func deployFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The scaled alert rules keep every alert, with `for:` divided by the
// factor and the evaluation interval replaced; promtool accepts them.
func TestScaleRulesOfTheDeployFiles(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, name := range []string{"recording_rules.yml", "alert_rules.yml"} {
		src := deployFile(t, name)
		scaled, err := ScaleRules(src, TimeScale, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		before, err := Alerts(src)
		if err != nil {
			t.Fatal(err)
		}
		after, err := Alerts(scaled)
		if err != nil {
			t.Fatal(err)
		}
		if len(before) != len(after) {
			t.Fatalf("%s: %d alerts became %d", name, len(before), len(after))
		}
		for i, a := range before {
			want := (a.For / TimeScale).Round(time.Second)
			if a.For > 0 && want < time.Second {
				want = time.Second
			}
			if b := after[i]; b.Name != a.Name || b.Expr != a.Expr || b.Severity != a.Severity || b.For != want {
				t.Errorf("%s: %+v became %+v, want for %v", name, a, b, want)
			}
		}
		if n := strings.Count(string(scaled), "interval: 1s"); n == 0 {
			t.Errorf("%s: no group evaluates every second:\n%s", name, scaled)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, scaled, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	promtool := need(t, "promtool", "/usr/bin/promtool")
	if out, err := exec.Command(promtool, append([]string{"check", "rules"}, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestScaleRulesArithmetic(t *testing.T) {
	src := []byte(`groups:
  - name: g
    rules:
      - alert: A
        expr: vector(1)
        for: 5m
      - alert: B
        expr: vector(1)
        for: 10s
        keep_firing_for: 2m
      - alert: C
        expr: vector(1)
`)
	out, err := ScaleRules(src, 20, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"for: 15s", "for: 1s", "keep_firing_for: 6s", "interval: 2s"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	for _, bad := range [][]byte{[]byte("groups: 3"), []byte("- a"), []byte("groups:\n  - rules:\n      - alert: X\n        for: soon\n")} {
		if _, err := ScaleRules(bad, 20, time.Second); err == nil {
			t.Errorf("ScaleRules(%q) accepted", bad)
		}
	}
	if _, err := ScaleRules(src, 0, time.Second); err == nil {
		t.Error("factor 0 accepted")
	}
}

func TestOutageAlertsSkipTargetDown(t *testing.T) {
	got := OutageAlerts([]Alert{
		{Name: "Errors", Severity: "critical", Expr: "job:llm_request_errors:ratio_rate5m > 0.05"},
		{Name: "Down", Severity: "critical", Expr: `up{job="llm_app"} == 0`},
		{Name: "Absent", Severity: "critical", Expr: "up == 0"},
		{Name: "Slow", Severity: "warning", Expr: "x > 1"},
		{Name: "Startup", Severity: "critical", Expr: "llm_startup_failures > 0"},
	})
	var names []string
	for _, a := range got {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "Errors,Startup" {
		t.Fatalf("outage alerts = %v", names)
	}
	all, err := Alerts(deployFile(t, "alert_rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(OutageAlerts(all)) == 0 {
		t.Fatal("examples/deploy/alert_rules.yml has no critical alert a provider outage could fire")
	}
}

// nginx accepts the generated configuration (nginx -t).
func TestNginxConfig(t *testing.T) {
	if _, err := (NginxConfig{Dir: "relative", Listen: "127.0.0.1:1", Upstreams: []string{"a:1"}}).Render(); err == nil {
		t.Error("a relative Dir was accepted")
	}
	if _, err := (NginxConfig{Dir: "/tmp", Listen: "127.0.0.1:1; evil", Upstreams: []string{"a:1"}}).Render(); err == nil {
		t.Error("a directive in Listen was accepted")
	}
	dir := t.TempDir()
	conf, err := NginxConfig{Dir: dir, Listen: "127.0.0.1:1", Upstreams: []string{"127.0.0.1:2", "127.0.0.1:3"}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, "server 127.0.0.1:2 ") || !strings.Contains(conf, "server 127.0.0.1:3 ") {
		t.Fatalf("upstreams missing:\n%s", conf)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	nginx := need(t, "nginx", "/usr/sbin/nginx")
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// promtool accepts the generated prometheus.yml with the scaled rules.
func TestPrometheusConfig(t *testing.T) {
	if _, err := (PrometheusConfig{}).Render(); err == nil {
		t.Error("an empty config was accepted")
	}
	dir := t.TempDir()
	for _, name := range []string{"recording_rules.yml", "alert_rules.yml"} {
		scaled, err := ScaleRules(deployFile(t, name), TimeScale, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), scaled, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := PrometheusConfig{Interval: "1s", Targets: []string{"127.0.0.1:1", "127.0.0.1:2"},
		RuleFiles: []string{"recording_rules.yml", "alert_rules.yml"}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool := need(t, "promtool", "/usr/bin/promtool")
	if out, err := exec.Command(promtool, "check", "config", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s\n%s", err, out, conf)
	}
}
