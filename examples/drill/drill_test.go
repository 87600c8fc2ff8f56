package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The drill's shape. The run time covers the healthy phase (until
// Prometheus has counted traffic from every replica), the outage until the
// alert fires, and some more outage traffic.
const (
	replicas     = 3
	locustUsers  = 30 // about 10 requests/s with the seed's waits
	locustRun    = 65 * time.Second
	healthyCount = 100 // requests Prometheus must have counted before the outage
	// outageWindow is the issue's "fires within 5 minutes of a total
	// outage", scaled like the rules' `for:`.
	outageWindow = 5 * time.Minute / TimeScale
	// evalSlack is what the scaled timing cannot scale: scrape (1 s),
	// recording rules, then the alert rule (1 s each), and Prometheus
	// marking a rule firing on the evaluation after `for:` has passed.
	evalSlack = 10 * time.Second
)

// TestDrill runs the operator's drill of docs/drill.md. It needs nginx,
// prometheus, locust and Redis: without them it skips, or fails when CI is
// set.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill takes about two minutes; not in -short mode")
	}
	nginx := need(t, "nginx", "/usr/sbin/nginx")
	prometheus := need(t, "prometheus", "/usr/bin/prometheus")
	locust := need(t, "locust", "/usr/bin/locust")
	redisAddr := os.Getenv("LLMKIT_REDIS_ADDR")
	if redisAddr == "" {
		redisAddr = "127.0.0.1:6379"
	}
	if c, err := net.DialTimeout("tcp", redisAddr, time.Second); err != nil {
		missing(t, fmt.Sprintf("no Redis at %s (LLMKIT_REDIS_ADDR): %v", redisAddr, err))
	} else {
		c.Close()
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	goBuild(t, bin, "./service", "./drill/mock")

	ports := freePorts(t, 2+replicas+1)
	mockAddr, nginxAddr, promAddr, replicaAddrs := ports[0], ports[1], ports[2], ports[3:]

	// The provider: healthy and instant until the outage.
	mock := start(t, dir, "mock", nil, 5*time.Second, filepath.Join(bin, "mock"), "-addr", mockAddr)
	mock.waitHTTP(t, "http://"+mockAddr+"/fault", 30*time.Second)

	// Three replicas sharing Redis under a prefix of their own.
	prefix := "llmkit-drill-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	t.Cleanup(func() { deleteKeys(t, redisAddr, prefix) })
	for i, addr := range replicaAddrs {
		p := start(t, dir, "replica"+strconv.Itoa(i+1), []string{
			"LISTEN_ADDR=" + addr, "PPROF_ADDR=off", "LOG_LEVEL=info",
			"REDIS_ADDR=" + redisAddr, "REDIS_KEY_PREFIX=" + prefix,
			"OPENAI_BASE_URL=http://" + mockAddr + "/v1", "OPENAI_API_KEY=sk-drill-not-a-real-key",
			"LLMKIT_API_KEYS=test-key drill", // the seed's key, as tenant "drill"
		}, 15*time.Second, filepath.Join(bin, "service"))
		p.waitHTTP(t, "http://"+addr+"/healthz", 30*time.Second)
	}

	// nginx in front, as the seed's load balancer.
	ngDir := filepath.Join(dir, "nginx")
	conf, err := NginxConfig{Dir: ngDir, Listen: nginxAddr, Upstreams: replicaAddrs}.Render()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ngDir, "nginx.conf"), []byte(conf))
	ng := start(t, dir, "nginx", nil, 10*time.Second, nginx,
		"-p", ngDir, "-c", filepath.Join(ngDir, "nginx.conf"), "-e", filepath.Join(ngDir, "error.log"))
	ng.waitHTTP(t, "http://"+nginxAddr+"/nginx-health", 30*time.Second)

	// Prometheus with the deploy rules, `for:` scaled, everything at 1 s.
	promDir := filepath.Join(dir, "prometheus")
	var outage []Alert
	for _, name := range []string{"recording_rules.yml", "alert_rules.yml"} {
		src, err := os.ReadFile(filepath.Join("..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		scaled, err := ScaleRules(src, TimeScale, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(promDir, name), scaled)
		all, err := Alerts(src)
		if err != nil {
			t.Fatal(err)
		}
		outage = append(outage, OutageAlerts(all)...)
	}
	if len(outage) == 0 {
		t.Fatal("examples/deploy/alert_rules.yml has no critical alert that a provider outage could fire")
	}
	names := make([]string, len(outage))
	for i, a := range outage {
		names[i] = a.Name
	}
	t.Logf("outage alerts (critical, not about scrape targets): %v; window %v (5m / %d) + %v slack", names, outageWindow, TimeScale, evalSlack)
	promConf, err := PrometheusConfig{Interval: "1s", Targets: replicaAddrs,
		RuleFiles: []string{"recording_rules.yml", "alert_rules.yml"}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(promDir, "prometheus.yml"), promConf)
	pr := start(t, dir, "prometheus", nil, 15*time.Second, prometheus,
		"--config.file="+filepath.Join(promDir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	pr.waitHTTP(t, "http://"+promAddr+"/-/ready", 60*time.Second)
	pq := prom{base: "http://" + promAddr, client: &http.Client{Timeout: 5 * time.Second}}
	defer pq.client.CloseIdleConnections()

	// /readyz of every replica, four times a second, from now to the end.
	ready := watchReadiness(replicaAddrs, 250*time.Millisecond)
	defer ready.finish()

	// The seed's two Locust classes, headless, for a bounded time.
	csvPrefix := filepath.Join(dir, "locust", "seed")
	if err := os.MkdirAll(filepath.Dir(csvPrefix), 0o755); err != nil {
		t.Fatal(err)
	}
	locustfile, err := filepath.Abs(filepath.Join("..", "loadtest", "locustfile.py"))
	if err != nil {
		t.Fatal(err)
	}
	users := strconv.Itoa(locustUsers)
	lo := start(t, dir, "locust", []string{"PYTHONDONTWRITEBYTECODE=1"}, 15*time.Second, locust,
		"-f", locustfile, "--headless", "-u", users, "-r", users,
		"-t", strconv.Itoa(int(locustRun/time.Second))+"s", "--host", "http://"+nginxAddr,
		"--csv", csvPrefix, "--only-summary", "--loglevel", "WARNING")
	locustStarted := time.Now()

	// Healthy phase: until Prometheus has counted traffic from every replica.
	poll(t, "healthy traffic in Prometheus", 30*time.Second, func() (bool, string) {
		if done, err := lo.exited(); done {
			t.Fatalf("locust exited during the healthy phase: %v\n%s", err, lo.tail())
		}
		n, err := pq.scalar(`sum(llm_requests_total{job="llm_app"})`)
		if err != nil {
			return false, err.Error()
		}
		up, err := pq.scalar(`count(sum by (instance) (llm_requests_total{job="llm_app"}) > 0)`)
		if err != nil {
			return false, err.Error()
		}
		return n >= healthyCount && up == replicas, fmt.Sprintf("%v requests from %v replicas", n, up)
	})
	states, err := pq.alertStates()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if s, ok := states[name]; ok {
			t.Fatalf("%s is %s before the outage: the healthy phase must not page", name, s)
		}
	}

	// The outage: the provider answers 503 to every call.
	setMockFault(t, mockAddr, "unavailable")
	outageAt := time.Now()
	t.Logf("outage started %v after Locust", outageAt.Sub(locustStarted).Round(time.Second))
	var pendingAfter, firingAfter time.Duration
	poll(t, "an outage alert firing", outageWindow+evalSlack, func() (bool, string) {
		states, err := pq.alertStates()
		if err != nil {
			return false, err.Error()
		}
		for _, name := range names {
			switch states[name] {
			case "firing":
				if pendingAfter == 0 {
					pendingAfter = time.Since(outageAt)
				}
				firingAfter = time.Since(outageAt)
				t.Logf("%s pending after %v, firing after %v", name, pendingAfter.Round(time.Second), firingAfter.Round(time.Second))
				return true, ""
			case "pending":
				if pendingAfter == 0 {
					pendingAfter = time.Since(outageAt)
				}
			}
		}
		return false, fmt.Sprintf("alerts: %v", states)
	})
	if pendingAfter > outageWindow {
		t.Errorf("the outage alert went pending %v after the outage began; its scaled window is %v", pendingAfter, outageWindow)
	}

	// Let Locust finish by itself, with the provider still down.
	select {
	case <-lo.done:
	case <-time.After(time.Until(locustStarted.Add(locustRun + time.Minute))):
		t.Fatalf("locust did not stop after -t %v\n%s", locustRun, lo.tail())
	}
	seen, notReady := ready.finish()

	res := readLocust(t, csvPrefix)
	t.Logf("locust: %d requests, %d failures %v; readiness probes: %d, not ready: %d", res.Requests, res.Failures, res.Errors, seen, len(notReady))
	if res.Requests < healthyCount {
		t.Errorf("locust sent %d requests; the drill needs at least %d", res.Requests, healthyCount)
	}
	for e, n := range res.Errors {
		if connectionError(e) {
			t.Errorf("%d requests got a connection error: %s", n, e)
		}
	}
	if res.Failures > 0 {
		t.Errorf("%d of %d requests failed (%v): during an outage the fallback must answer", res.Failures, res.Requests, res.Errors)
	}
	statuses := nginxStatuses(t, filepath.Join(ngDir, "access.log"))
	for st, n := range statuses {
		if !strings.HasPrefix(st, "200 ") {
			t.Errorf("nginx answered %d requests with status/upstream status %q", n, st)
		}
	}
	if len(notReady) > 0 {
		t.Errorf("/readyz was not 200 %d times out of %d (a readiness probe would pull the replica); first: %v",
			len(notReady), seen, notReady[:min(5, len(notReady))])
	}
	var stats map[string]int64
	getJSON(t, "http://"+mockAddr+"/stats", &stats)
	if stats["unavailable"] == 0 {
		t.Errorf("the mock answered no call with 503 during the outage: %v", stats)
	}
	for _, p := range []*process{ng, pr, mock} {
		if done, err := p.exited(); done {
			t.Errorf("%s exited during the drill: %v\n%s", p.name, err, p.tail())
		}
	}
	if t.Failed() {
		for i := range replicaAddrs {
			t.Logf("replica%d log tail:\n%s", i+1, tailFile(filepath.Join(dir, "replica"+strconv.Itoa(i+1)+".log")))
		}
	}
}

// poll calls check every 500 ms until it reports true, for at most limit.
func poll(t *testing.T, what string, limit time.Duration, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, state := check()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v (last: %s)", what, limit, last)
		}
		<-tick.C
	}
}

func setMockFault(t *testing.T, addr, mode string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/fault?mode="+mode, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mock fault %s: %s", mode, resp.Status)
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// deleteKeys removes the drill's Redis keys.
func deleteKeys(t *testing.T, addr, prefix string) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("redis cleanup: %v", err)
		return
	}
	for chunk := range slices.Chunk(keys, 500) {
		if err := rdb.Del(ctx, chunk...).Err(); err != nil {
			t.Errorf("redis cleanup: %v", err)
			return
		}
	}
}
