package drill

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// prom queries a Prometheus server's HTTP API.
type prom struct {
	base   string
	client *http.Client
}

func (p prom) get(path string, out any) error {
	resp, err := p.client.Get(p.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// scalar evaluates an instant query that returns one sample (or none: 0).
func (p prom) scalar(query string) (float64, error) {
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(query), &data); err != nil {
		return 0, err
	}
	if len(data.Result) == 0 {
		return 0, nil
	}
	s, _ := data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// alertStates returns the state ("pending" or "firing") of every active
// alert by name; an alert that is not active is absent.
func (p prom) alertStates() (map[string]string, error) {
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", &data); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range data.Alerts {
		name := a.Labels["alertname"]
		if out[name] != "firing" { // one firing series makes the alert firing
			out[name] = a.State
		}
	}
	return out, nil
}

// readiness polls every replica's /readyz until stopped, and keeps every
// answer that was not 200.
type readiness struct {
	once sync.Once
	mu   sync.Mutex
	bad  []string
	seen int
	stop chan struct{}
	done chan struct{}
}

func watchReadiness(replicas []string, every time.Duration) *readiness {
	r := &readiness{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(r.done)
		defer client.CloseIdleConnections()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			for _, addr := range replicas {
				resp, err := client.Get("http://" + addr + "/readyz")
				r.mu.Lock()
				r.seen++
				switch {
				case err != nil:
					r.bad = append(r.bad, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), addr, err))
				case resp.StatusCode != http.StatusOK:
					r.bad = append(r.bad, fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05.000"), addr, resp.Status))
				}
				r.mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
			}
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

// finish stops the poller and returns how many answers it saw and the
// ones that were not 200. Calling it again returns the same.
func (r *readiness) finish() (int, []string) {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen, r.bad
}

// locustResult is what the drill reads from Locust's --csv files.
type locustResult struct {
	Requests, Failures int
	// Errors are the failures CSV's rows: "error text" -> occurrences.
	Errors map[string]int
}

func readLocust(t *testing.T, prefix string) locustResult {
	t.Helper()
	res := locustResult{Errors: map[string]int{}}
	for _, row := range readCSV(t, prefix+"_stats.csv") {
		if row["Name"] == "Aggregated" {
			res.Requests, _ = strconv.Atoi(row["Request Count"])
			res.Failures, _ = strconv.Atoi(row["Failure Count"])
		}
	}
	for _, row := range readCSV(t, prefix+"_failures.csv") {
		n, _ := strconv.Atoi(row["Occurrences"])
		res.Errors[row["Error"]] += n
	}
	return res
}

func readCSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("locust wrote no %s: %v", path, err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []map[string]string
	for _, r := range rows[min(1, len(rows)):] {
		m := map[string]string{}
		for i, h := range rows[0] {
			if i < len(r) {
				m[h] = r[i]
			}
		}
		out = append(out, m)
	}
	return out
}

// connectionError reports whether a Locust failure is one a user sees as a
// connection error: nothing answered, or a gateway answered for a replica
// that did not (nginx's 502 and 504).
func connectionError(e string) bool {
	for _, s := range []string{"ConnectionError", "ConnectionRefused", "RemoteDisconnected", "ConnectionReset",
		"timed out", "Timeout", "status code 0", "502", "504"} {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// nginxStatuses counts nginx's access log by "status upstream_status" for
// POST /generate.
func nginxStatuses(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("nginx access log: %v", err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"POST /generate `) {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 2 {
			out[f[0]+" "+f[1]]++
		}
	}
	return out
}
