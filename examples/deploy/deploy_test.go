package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v4"

	"github.com/llmkit/llmkit/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The files under test, relative to this directory.
const (
	recordingRulesFile = "recording_rules.yml"
	alertRulesFile     = "alert_rules.yml"
	rulesTestFile      = "rules_test.yml"
	promConfigFile     = "prometheus.yml"
	composePromFile    = "prometheus.compose.yml"
	dashboardFile      = "grafana-dashboard.json"
	composeFile        = "docker-compose.yml"
	docFile            = "../../docs/deploy.md"
	runbookBase        = "https://github.com/llmkit/llmkit/blob/main/docs/deploy.md#"
)

// ---------------------------------------------------------------------------
// PromQL name extraction

// promqlNames returns the metric names (identifiers starting with "llm_")
// and the recording-rule names (identifiers containing ':') that a PromQL
// expression refers to, in order of appearance. It is a tokenizer, not a
// parser: it skips string literals (label values, regexes), comments,
// numbers and durations (so the "1m" of "[5m:1m]" is not a name) and
// Grafana variables ($job, ${datasource}, $__rate_interval), and reads
// everything else that looks like an identifier.
func promqlNames(expr string) (metricNames, records []string) {
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				for i < len(expr) && expr[i] != '}' {
					i++
				}
				i++
				continue
			}
			for i < len(expr) && isIdentChar(expr[i]) {
				i++
			}
		case isDigit(c) || (c == '.' && i+1 < len(expr) && isDigit(expr[i+1])):
			for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && (isIdentChar(expr[j]) || expr[j] == ':') {
				j++
			}
			tok := expr[i:j]
			i = j
			switch {
			case strings.Contains(tok, ":"):
				records = append(records, tok)
			case len(tok) >= 4 && strings.EqualFold(tok[:4], "llm_"):
				// Case-insensitive so that a mistyped "LLM_x" is reported
				// rather than silently ignored.
				metricNames = append(metricNames, tok)
			}
		default:
			i++
		}
	}
	return metricNames, records
}

// skipString returns the index just past the string literal that starts
// at expr[i]. Backquoted strings have no escapes.
func skipString(expr string, i int) int {
	quote := expr[i]
	for i++; i < len(expr); i++ {
		switch expr[i] {
		case '\\':
			if quote != '`' {
				i++
			}
		case quote:
			return i + 1
		}
	}
	return i
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// histogramSuffixes are the series suffixes of a histogram family.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// resolves reports whether the series name belongs to an exported family:
// the family itself, or a histogram's _bucket/_sum/_count series.
// MetricNames does not say which families are histograms, so the suffixes
// are accepted only on a family named for its base unit (_seconds, _bytes),
// as Prometheus naming asks of histograms; the counters (_total) and gauges
// (llm_quota_remaining, ...) do not qualify, so "llm_quota_remaining_count"
// is rejected.
func resolves(families map[string]bool, name string) bool {
	if families[name] {
		return true
	}
	for _, suf := range histogramSuffixes {
		base, ok := strings.CutSuffix(name, suf)
		if ok && families[base] && (strings.HasSuffix(base, "_seconds") || strings.HasSuffix(base, "_bytes")) {
			return true
		}
	}
	return false
}

func TestPromQLNames(t *testing.T) {
	tests := []struct {
		expr             string
		metrics, records []string
	}{
		{
			expr:    `sum by (endpoint) (rate(llm_requests_total{status!~"ok|canceled", endpoint=~"$endpoint"}[$__rate_interval]))`,
			metrics: []string{"llm_requests_total"},
		},
		{
			// A label value that looks like a metric is not one.
			expr:    `llm_tokens_total{type="llm_fake_total"} + on() llm_retries_total`,
			metrics: []string{"llm_tokens_total", "llm_retries_total"},
		},
		{
			expr:    `histogram_quantile(0.95, endpoint_le:llm_request_duration_seconds_bucket:rate5m) > 1e1`,
			records: []string{"endpoint_le:llm_request_duration_seconds_bucket:rate5m"},
		},
		{
			// Subquery: the ":" between durations is not a record name.
			expr:    "max_over_time(llm_circuit_breaker_state[5m:1m] offset 1h) # llm_not_a_metric\n== 2",
			metrics: []string{"llm_circuit_breaker_state"},
		},
		{
			expr:    "(job:llm_fallbacks:rate5m or job:llm_requests:rate5m * 0) / (job:llm_requests:rate5m > 0)",
			records: []string{"job:llm_fallbacks:rate5m", "job:llm_requests:rate5m", "job:llm_requests:rate5m"},
		},
		{
			// Grafana variables in all their forms, escapes and raw strings.
			expr:    "sum(rate(LLM_Typo{job=~\"${job:regex}\", x=\"a\\\"llm_x\"}[${__rate_interval}])) / llm_cache_requests_total{r=`llm_y`}",
			metrics: []string{"LLM_Typo", "llm_cache_requests_total"},
		},
		{expr: `up{job="llm_app"} == 0`},
	}
	for _, tt := range tests {
		gotM, gotR := promqlNames(tt.expr)
		if !slices.Equal(gotM, tt.metrics) || !slices.Equal(gotR, tt.records) {
			t.Errorf("promqlNames(%q)\n got metrics %q records %q\nwant metrics %q records %q", tt.expr, gotM, gotR, tt.metrics, tt.records)
		}
	}
}

func TestResolves(t *testing.T) {
	families := map[string]bool{"llm_requests_total": true, "llm_request_duration_seconds": true, "llm_quota_remaining": true}
	for name, want := range map[string]bool{
		"llm_requests_total":                  true,
		"llm_request_duration_seconds":        true,
		"llm_request_duration_seconds_bucket": true,
		"llm_request_duration_seconds_count":  true,
		"llm_request_duration_seconds_sum":    true,
		"llm_requests_total_bucket":           false,
		"llm_requests":                        false,
		"llm_request_duration_second_bucket":  false,
	} {
		if got := resolves(families, name); got != want {
			t.Errorf("resolves(%q) = %v, want %v", name, got, want)
		}
	}
}

// ---------------------------------------------------------------------------
// The files

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type unitTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

type promConfig struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName        string `yaml:"job_name"`
		ScrapeInterval string `yaml:"scrape_interval"`
		StaticConfigs  []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func loadYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// loadRules returns the rules of both rule files in file order.
func loadRules(t *testing.T) []rule {
	t.Helper()
	var all []rule
	for _, name := range []string{recordingRulesFile, alertRulesFile} {
		var f ruleFile
		loadYAML(t, name, &f)
		if len(f.Groups) == 0 {
			t.Fatalf("%s: no rule groups", name)
		}
		for _, g := range f.Groups {
			all = append(all, g.Rules...)
		}
	}
	return all
}

// exportedFamilies is the set the metrics package says it exports under
// the default namespace.
func exportedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	names := metrics.MetricNames("llm")
	if len(names) == 0 {
		t.Fatal(`metrics.MetricNames("llm") is empty`)
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

// recordingName is the level:metric:operations convention.
var recordingName = regexp.MustCompile(`^[a-z_]+:llm_[a-z_]+:[a-z0-9_]+$`)

// checkNames reports every metric in expr that is not exported and every
// recording rule it references that is not defined.
func checkNames(t *testing.T, where, expr string, families, records map[string]bool) (used []string) {
	t.Helper()
	ms, rs := promqlNames(expr)
	for _, m := range ms {
		if !resolves(families, m) {
			t.Errorf("%s: metric %q is not exported by metrics.MetricNames(\"llm\")", where, m)
		}
		used = append(used, m)
	}
	for _, r := range rs {
		if !records[r] {
			t.Errorf("%s: recording rule %q is not defined in %s", where, r, recordingRulesFile)
		}
	}
	if expr == "" {
		t.Errorf("%s: empty expression", where)
	}
	return used
}

func TestRulesUseExportedMetrics(t *testing.T) {
	families := exportedFamilies(t)
	rules := loadRules(t)

	records := map[string]bool{}
	for _, r := range rules {
		if r.Record == "" {
			continue
		}
		if !recordingName.MatchString(r.Record) {
			t.Errorf("recording rule %q does not follow level:metric:operations", r.Record)
		}
		if records[r.Record] {
			t.Errorf("recording rule %q defined twice", r.Record)
		}
		// A rule may use only records defined before it (same group order)
		// so every evaluation sees fresh inputs; the check below therefore
		// runs against the set built so far.
		checkNames(t, "record "+r.Record, r.Expr, families, records)
		records[r.Record] = true
	}
	for _, r := range rules {
		if r.Alert != "" {
			checkNames(t, "alert "+r.Alert, r.Expr, families, records)
		}
	}

	// The unit tests must feed the rules series the code really exports.
	var ut unitTestFile
	loadYAML(t, rulesTestFile, &ut)
	for i, tg := range ut.Tests {
		for _, s := range tg.InputSeries {
			name, _, _ := strings.Cut(s.Series, "{")
			if name == "up" {
				continue
			}
			if !resolves(families, name) {
				t.Errorf("%s test %d: input series %q is not an exported metric", rulesTestFile, i, name)
			}
		}
		for _, e := range tg.PromQLExprTest {
			checkNames(t, fmt.Sprintf("%s test %d", rulesTestFile, i), e.Expr, families, records)
		}
	}
}

func TestAlertsAreCompleteAndTested(t *testing.T) {
	rules := loadRules(t)
	var ut unitTestFile
	loadYAML(t, rulesTestFile, &ut)
	fired := map[string]bool{}
	quiet := 0
	for _, tg := range ut.Tests {
		for _, a := range tg.AlertRuleTest {
			if len(a.ExpAlerts) == 0 {
				quiet++
			}
			for _, e := range a.ExpAlerts {
				if e.ExpLabels["severity"] == "" {
					t.Errorf("%s: expected %s alert without a severity label", rulesTestFile, a.Alertname)
				}
				fired[a.Alertname] = true
			}
		}
	}
	if quiet == 0 {
		t.Errorf("%s: no alert_rule_test expects an alert NOT to fire", rulesTestFile)
	}
	if !slices.Equal(ut.RuleFiles, []string{recordingRulesFile, alertRulesFile}) {
		t.Errorf("%s: rule_files = %q, want both rule files", rulesTestFile, ut.RuleFiles)
	}

	doc, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}

	// What the issue asks for, by alert name.
	want := []string{
		"LLMErrorOrDegradedRatioHigh", "LLMLatencyP95AboveSLO", "LLMCircuitBreakerOpen",
		"LLMProviderQuotaNearlyExhausted", "LLMCacheHitRatioDrop", "LLMScrapeTargetDown",
		"LLMRouterAllDeploymentsCooling", "LLMSharedLimiterDegraded",
	}
	var got []string
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		got = append(got, r.Alert)
		if r.For == "" {
			t.Errorf("alert %s has no for:", r.Alert)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s annotation", r.Alert, a)
			}
		}
		if u, w := r.Annotations["runbook_url"], runbookBase+strings.ToLower(r.Alert); u != w {
			t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, u, w)
		}
		if !strings.Contains(string(doc), "\n### "+r.Alert+"\n") {
			t.Errorf("alert %s: %s has no \"### %s\" section for its runbook_url", r.Alert, docFile, r.Alert)
		}
		if !fired[r.Alert] {
			t.Errorf("alert %s is never fired in %s", r.Alert, rulesTestFile)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("alerts = %q, want %q", got, want)
	}
	for name := range fired {
		if !slices.Contains(got, name) {
			t.Errorf("%s fires %q, which no rule defines", rulesTestFile, name)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	var c promConfig
	loadYAML(t, promConfigFile, &c)
	if len(c.ScrapeConfigs) != 1 {
		t.Fatalf("%d scrape configs, want 1", len(c.ScrapeConfigs))
	}
	sc := c.ScrapeConfigs[0]
	if sc.JobName != "llm_app" || sc.ScrapeInterval != "15s" {
		t.Errorf("job %q every %q, want llm_app every 15s", sc.JobName, sc.ScrapeInterval)
	}
	if len(sc.StaticConfigs) != 1 || !slices.Equal(sc.StaticConfigs[0].Targets, []string{"localhost:8000"}) {
		t.Errorf("static_configs = %+v, want one target localhost:8000", sc.StaticConfigs)
	}
	// The alert rules select job="llm_app"; both configs must scrape that job.
	var cc promConfig
	loadYAML(t, composePromFile, &cc)
	for name, cfg := range map[string]promConfig{promConfigFile: c, composePromFile: cc} {
		if !slices.Equal(cfg.RuleFiles, []string{recordingRulesFile, alertRulesFile}) {
			t.Errorf("%s: rule_files = %q, want both rule files", name, cfg.RuleFiles)
		}
		if len(cfg.ScrapeConfigs) == 0 || cfg.ScrapeConfigs[0].JobName != "llm_app" {
			t.Errorf("%s: first scrape job is not llm_app", name)
		}
	}
}

// ---------------------------------------------------------------------------
// The dashboard

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	GridPos    struct{ X, Y, W, H int } `json:"gridPos"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// variableQuery returns a query variable's PromQL-ish query, which Grafana
// stores either as a string or as {"query": "..."}.
func variableQuery(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Query
}

// allExprs walks the whole dashboard JSON and returns every "expr" string,
// wherever it sits, so a panel nested in a collapsed row is not missed.
func allExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	families := exportedFamilies(t)
	d := loadDashboard(t)
	exprs := allExprs(t)
	if len(exprs) < 15 {
		t.Fatalf("found %d expressions in %s, expected the dashboard's targets", len(exprs), dashboardFile)
	}
	var records map[string]bool // the dashboard must work without the rules: no records allowed
	for _, e := range exprs {
		checkNames(t, "dashboard expr "+e, e, families, records)
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			checkNames(t, "dashboard variable "+v.Name, variableQuery(v.Query), families, records)
		}
	}
}

func TestDashboardLayout(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later (datasource refs as objects)", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" && variableQuery(v.Query) != "prometheus" {
			t.Errorf("datasource variable %q selects %q, want prometheus", v.Name, variableQuery(v.Query))
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "endpoint": "query", "model": "query"} {
		if vars[name] != typ {
			t.Errorf("templating variable %q: type %q, want %q", name, vars[name], typ)
		}
	}

	// Each panel the issue asks for, and the metric it must show.
	want := map[string][]string{
		"Request rate":                {"llm_requests_total"},
		"Error ratio":                 {"llm_requests_total"},
		"Latency p50 / p95 / p99":     {"llm_request_duration_seconds_bucket"},
		"Time to first token":         {"llm_time_to_first_token_seconds_bucket"},
		"Tokens per second":           {"llm_tokens_total"},
		"Cache hit ratio":             {"llm_cache_requests_total"},
		"Circuit breaker state":       {"llm_circuit_breaker_state"},
		"Provider quota remaining":    {"llm_quota_remaining"},
		"Retries and fallbacks":       {"llm_retries_total", "llm_fallbacks_total"},
		"Provider attempts by status": {"llm_provider_calls_total"},
	}
	ids := map[int]bool{}
	var boxes []panel
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		for _, q := range boxes {
			a, b := p.GridPos, q.GridPos
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("panels %q and %q overlap", p.Title, q.Title)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
		}
		var used []string
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a target does not use the ${datasource} variable", p.Title)
			}
			ms, _ := promqlNames(tg.Expr)
			used = append(used, ms...)
			// Series that carry endpoint and model must follow the selectors.
			for _, m := range ms {
				if strings.HasPrefix(m, "llm_request") || strings.HasPrefix(m, "llm_time_to_first_token") {
					for _, sel := range []string{`endpoint=~"$endpoint"`, `model=~"$model"`} {
						if !strings.Contains(tg.Expr, sel) {
							t.Errorf("panel %q: %s is not filtered by %s", p.Title, m, sel)
						}
					}
				}
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q: target not filtered by job", p.Title)
			}
		}
		if ms, ok := want[p.Title]; ok {
			for _, m := range ms {
				if !slices.Contains(used, m) {
					t.Errorf("panel %q does not query %s", p.Title, m)
				}
			}
			delete(want, p.Title)
		}
		if p.Title == "Latency p50 / p95 / p99" {
			all := fmt.Sprint(p.Targets)
			for _, q := range []string{"(0.50,", "(0.95,", "(0.99,"} {
				if !strings.Contains(all, "histogram_quantile"+q) {
					t.Errorf("latency panel lacks histogram_quantile%s", q)
				}
			}
		}
	}
	for title := range want {
		t.Errorf("dashboard has no %q panel", title)
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml (documentation; not run here)

func TestComposeMountsExistingFiles(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	loadYAML(t, composeFile, &c)
	for _, s := range []string{"app", "lb", "redis", "prometheus", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("%s: no %q service", composeFile, s)
		}
	}
	mounted := map[string]bool{}
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") {
				continue // a named volume
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s: service %s mounts %s: %v", composeFile, name, src, err)
			}
			mounted[filepath.Clean(src)] = true
		}
	}
	for _, f := range []string{composePromFile, recordingRulesFile, alertRulesFile, dashboardFile} {
		if !mounted[f] {
			t.Errorf("%s does not mount %s", composeFile, f)
		}
	}
}

// ---------------------------------------------------------------------------
// promtool: the same steps as check.sh

// promtool returns promtool's path. Without it the test fails when the
// CI environment variable is set and is skipped otherwise.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not on PATH and CI is set: run examples/deploy/check.sh, which installs Debian's prometheus package")
		}
		t.Skip("promtool is not on PATH (examples/deploy/check.sh installs it); set CI=1 to make this a failure")
	}
	return path
}

func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtool(t *testing.T) {
	bin := promtool(t)
	t.Run("check config", func(t *testing.T) {
		runPromtool(t, bin, "check", "config", promConfigFile)
		runPromtool(t, bin, "check", "config", composePromFile)
	})
	t.Run("check rules", func(t *testing.T) {
		runPromtool(t, bin, "check", "rules", recordingRulesFile, alertRulesFile)
	})
	t.Run("test rules", func(t *testing.T) {
		runPromtool(t, bin, "test", "rules", rulesTestFile)
	})
	// promtool has no "check expression": wrap every dashboard expression,
	// its Grafana variables replaced by values, in a recording rule and let
	// check rules parse it.
	t.Run("dashboard expressions", func(t *testing.T) {
		type rec struct {
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		}
		var rs []rec
		for i, e := range allExprs(t) {
			rs = append(rs, rec{Record: fmt.Sprintf("dashboard:llm_expr_%d:check", i), Expr: grafanaVars.ReplaceAllStringFunc(e, grafanaValue)})
		}
		b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rs}}})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "dashboard_rules.yml")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		runPromtool(t, bin, "check", "rules", f)
	})
}

var grafanaVars = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)

// grafanaValue is what Grafana would put in place of a variable: a range
// for the interval variables, a match-all regex for the selectors.
func grafanaValue(v string) string {
	name := strings.Trim(v, "${}")
	name, _, _ = strings.Cut(name, ":")
	if strings.HasPrefix(name, "__") && strings.HasSuffix(name, "interval") || name == "__range" {
		return "1m"
	}
	return ".*"
}
