package drill

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v4"
)

// TimeScale is how much faster than real time the drill's alerts run: the
// rule files are examples/deploy's, with every `for:` (and
// keep_firing_for:) divided by it. A 5-minute window becomes 15 s. The
// rate windows inside the expressions ([5m]) are left alone: they decide
// what an alert measures, `for:` only how long it must hold.
const TimeScale = 20

// ScaleRules returns a Prometheus rule file with every rule's `for:` and
// `keep_firing_for:` divided by factor (rounded to whole seconds, at least
// 1 s) and every group's evaluation interval set to interval. Everything
// else, comments included, is kept as written.
func ScaleRules(src []byte, factor int, interval time.Duration) ([]byte, error) {
	if factor < 1 || interval < time.Second {
		return nil, errors.New("scale rules: want a factor of at least 1 and an interval of at least 1s")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("scale rules: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("scale rules: not a YAML document")
	}
	groups := value(doc.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return nil, errors.New("scale rules: no groups")
	}
	for _, g := range groups.Content {
		setValue(g, "interval", model.Duration(interval).String())
		rules := value(g, "rules")
		if rules == nil {
			continue
		}
		for _, r := range rules.Content {
			for _, key := range []string{"for", "keep_firing_for"} {
				v := value(r, key)
				if v == nil {
					continue
				}
				d, err := model.ParseDuration(v.Value)
				if err != nil {
					return nil, fmt.Errorf("scale rules: %s %q: %w", key, v.Value, err)
				}
				v.Value = scale(time.Duration(d), factor).String()
			}
		}
	}
	return yaml.Marshal(&doc)
}

// scale divides d by factor, rounded to whole seconds, at least 1 s
// (0 stays 0: "no wait" is not scaled into one).
func scale(d time.Duration, factor int) model.Duration {
	if d == 0 {
		return 0
	}
	s := (d / time.Duration(factor)).Round(time.Second)
	return model.Duration(max(s, time.Second))
}

// value returns the value node of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setValue sets key in mapping m to a plain scalar, adding it when missing.
func setValue(m *yaml.Node, key, v string) {
	if n := value(m, key); n != nil {
		n.Kind, n.Tag, n.Value, n.Content = yaml.ScalarNode, "!!str", v, nil
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v})
}

// Alert is one alerting rule, as the drill needs to know it.
type Alert struct {
	Name     string
	Severity string
	Expr     string
	For      time.Duration
}

// Alerts lists the alerting rules of a rule file.
func Alerts(src []byte) ([]Alert, error) {
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Expr   string            `yaml:"expr"`
				For    string            `yaml:"for"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(src, &file); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	var out []Alert
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			a := Alert{Name: r.Alert, Severity: r.Labels["severity"], Expr: r.Expr}
			if r.For != "" {
				d, err := model.ParseDuration(r.For)
				if err != nil {
					return nil, fmt.Errorf("alerts: %s: for %q: %w", r.Alert, r.For, err)
				}
				a.For = time.Duration(d)
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// readsUp matches an expression over the `up` series: a scrape target
// being down, which an outage of the provider does not cause.
var readsUp = regexp.MustCompile(`(^|[^:\w])up\s*(\{|$|[^\w(])`)

// OutageAlerts are the alerts that must page during a provider outage:
// the critical ones, except those about scrape targets being down.
func OutageAlerts(all []Alert) []Alert {
	var out []Alert
	for _, a := range all {
		if a.Severity == "critical" && !readsUp.MatchString(a.Expr) {
			out = append(out, a)
		}
	}
	return out
}
