package router

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Deployment is one place a call can go: a provider client (with its own
// API key), the model to ask there, and how much traffic it takes.
type Deployment struct {
	// Name identifies the deployment in events and metric labels: 1 to 64
	// characters of [A-Za-z0-9_.:-], unique within the router.
	Name string
	// Client makes the calls. Required.
	Client llm.Client
	// Model is the model sent to this deployment; the router changes it on
	// a copy of the request, never the caller's. Empty keeps the request's.
	Model string
	// Weight is the deployment's share of its group's traffic: any finite
	// number ≥ 0, fractions included. 0 means it takes no traffic (drained,
	// but still configured). Every strategy honours it.
	Weight float64
	// RPM and TPM, when > 0, cap the requests and tokens sent to it per
	// minute, counted by this router: at the cap it is skipped until the
	// minute ends. Tokens are the estimated input, corrected by the usage
	// of each answer.
	RPM, TPM int
	// Tags describe the deployment (a region, a provider) for the operator;
	// Status reports them.
	Tags []string
	// Group names the group the deployment belongs to: one of
	// Config.Groups, or empty when Groups is empty.
	Group string
}

// Group is a set of interchangeable deployments: one model, several keys
// or regions.
type Group struct {
	// Name is referred to by Deployment.Group and by other groups'
	// Fallbacks; it becomes an EventFallback Source, so keep it bounded.
	Name string
	// Fallbacks names, per error kind, the group a call moves to when this
	// group cannot answer it: llm.KindContextLength to a larger-context
	// model's group, llm.KindContentFilter to another provider's,
	// llm.KindUnavailable to the next group. A context-length or
	// content-filter error moves at once (another deployment of the same
	// model would refuse as well); the failures that cool a deployment
	// (rate_limited, timeout, unavailable, overloaded, auth, and every
	// deployment cooling) move once no deployment of the group is left,
	// under their own kind's entry, else under KindUnavailable's.
	Fallbacks map[llm.Kind]string
}

// Strategy is how a call picks among a group's available deployments.
type Strategy uint8

const (
	// WeightedRandom draws a deployment with probability proportional to
	// its Weight. The default.
	WeightedRandom Strategy = iota
	// LeastInFlight picks the deployment with the fewest calls running
	// through this router; ties are drawn by Weight.
	LeastInFlight
	// LowestLatency picks the deployment with the lowest p90 over its
	// recent successful calls: of the time to first chunk for a stream,
	// of the whole call otherwise. A deployment without a recent sample is
	// tried first when nothing of it is in flight. Ties are drawn by
	// Weight.
	LowestLatency
	// UsageBased draws by Weight scaled by the share of the deployment's
	// allowance left: the least of its requests and tokens this minute
	// against RPM and TPM, and of the provider's last reported quota
	// (Response.Quota).
	UsageBased
	numStrategies
)

var strategyNames = [numStrategies]string{"weighted_random", "least_in_flight", "lowest_latency", "usage_based"}

// String returns the strategy's name, such as "least_in_flight".
func (s Strategy) String() string {
	if s >= numStrategies {
		return "unknown"
	}
	return strategyNames[s]
}

// SharedCooldowns shares cooldowns across the replicas of a service (a
// Redis-backed implementation is limit.Hints). The router's own state
// stays authoritative: a shared hint only ever adds cooling.
type SharedCooldowns interface {
	// CoolUntil tells the other replicas that name cools until until.
	CoolUntil(ctx context.Context, name string, until time.Time)
	// CoolingUntil returns until when another replica said name cools,
	// or the zero time.
	CoolingUntil(ctx context.Context, name string) time.Time
}

// Config configures a Router. Only Deployments is required.
type Config struct {
	Deployments []Deployment
	// Groups lists the groups, the first being where every call starts.
	// Empty means one group of every deployment (whose Group is then
	// empty).
	Groups   []Group
	Strategy Strategy
	// Cooldown is how long a deployment cools after a 429, 5xx, 529 or
	// timeout that did not say how long (Retry-After); default 5 s.
	// AuthCooldown is the cooldown after a 401 or 403; default 1 minute.
	// MaxCooldown caps every cooldown, Retry-After included; default 5
	// minutes. When it is set, the defaults of the others are at most it.
	Cooldown, AuthCooldown, MaxCooldown time.Duration
	// MaxWait is how long a call may wait, in all, for a cooling
	// deployment to come back when every one it may use is cooling; never
	// past the caller's deadline. 0 fails fast with KindCircuitOpen and the
	// RetryAfter of the earliest.
	MaxWait time.Duration
	// AttemptTimeout, when > 0, bounds each deployment's attempt (for a
	// stream, the wait for its first chunk): past it the deployment cools
	// as timed out and the call moves on.
	AttemptTimeout time.Duration
	// MaxAttempts caps the deployments tried per call; default every one.
	MaxAttempts int
	// LatencyTTL is how recent a latency sample must be to count for
	// LowestLatency; default 1 minute. Older windows count as unknown, so
	// a deployment that was slow gets another chance.
	LatencyTTL time.Duration
	// Shared, when set, shares cooldowns across replicas.
	Shared SharedCooldowns
	// Rand, when set, is the source of every draw, for reproducible
	// tests; the router serialises its use. Nil means math/rand/v2's
	// global source.
	Rand rand.Source
	// Observer hears EventRoute, EventCooldown and EventFallback, as the
	// observers on the call's context do.
	Observer llm.Observer
}

// maxDeployments bounds the deployments of a router: a call's tried set is
// a bit mask.
const maxDeployments = 64

func errf(format string, args ...any) error {
	return errors.New("router: " + fmt.Sprintf(format, args...))
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if len(c.Deployments) == 0 || len(c.Deployments) > maxDeployments {
		return c, errf("need 1 to %d deployments, got %d", maxDeployments, len(c.Deployments))
	}
	if c.Strategy >= numStrategies {
		return c, errf("unknown strategy %d", c.Strategy)
	}
	// Unset cooldowns default to at most MaxCooldown.
	if c.MaxCooldown > 0 && c.Cooldown == 0 {
		c.Cooldown = min(5*time.Second, c.MaxCooldown)
	}
	if c.MaxCooldown > 0 && c.AuthCooldown == 0 {
		c.AuthCooldown = min(time.Minute, c.MaxCooldown)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Cooldown", &c.Cooldown, 5 * time.Second},
		{"AuthCooldown", &c.AuthCooldown, time.Minute},
		{"MaxCooldown", &c.MaxCooldown, 5 * time.Minute},
		{"LatencyTTL", &c.LatencyTTL, time.Minute},
		{"MaxWait", &c.MaxWait, 0},
		{"AttemptTimeout", &c.AttemptTimeout, 0},
	} {
		if *d.v < 0 {
			return c, errf("%s must be ≥ 0", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxCooldown < c.Cooldown || c.MaxCooldown < c.AuthCooldown {
		return c, errf("MaxCooldown must be ≥ Cooldown and AuthCooldown")
	}
	if c.MaxAttempts < 0 {
		return c, errf("MaxAttempts must be ≥ 0")
	}
	if c.MaxAttempts == 0 || c.MaxAttempts > len(c.Deployments) {
		c.MaxAttempts = len(c.Deployments)
	}
	c.Deployments = append([]Deployment(nil), c.Deployments...)
	c.Groups = append([]Group(nil), c.Groups...)
	if len(c.Groups) == 0 {
		c.Groups = []Group{{}}
	}
	groups := map[string]int{}
	for i, g := range c.Groups {
		if _, dup := groups[g.Name]; dup {
			return c, errf("group %q listed twice", g.Name)
		}
		groups[g.Name] = i
	}
	names := map[string]bool{}
	live := make([]bool, len(c.Groups))
	for i := range c.Deployments {
		d := &c.Deployments[i]
		if err := checkName(d.Name); err != nil {
			return c, errf("deployment %d: %v", i, err)
		}
		if names[d.Name] {
			return c, errf("deployment name %q used twice", d.Name)
		}
		names[d.Name] = true
		if d.Client == nil {
			return c, errf("deployment %q has no Client", d.Name)
		}
		if math.IsNaN(d.Weight) || math.IsInf(d.Weight, 0) || d.Weight < 0 {
			return c, errf("deployment %q: Weight must be finite and ≥ 0", d.Name)
		}
		if d.RPM < 0 || d.TPM < 0 {
			return c, errf("deployment %q: RPM and TPM must be ≥ 0", d.Name)
		}
		g, ok := groups[d.Group]
		if !ok {
			return c, errf("deployment %q: group %q is not in Groups", d.Name, d.Group)
		}
		live[g] = live[g] || d.Weight > 0
		d.Tags = append([]string(nil), d.Tags...)
	}
	for i, g := range c.Groups {
		if !live[i] {
			return c, errf("group %q has no deployment with Weight > 0 (0 means never)", g.Name)
		}
		for k, to := range g.Fallbacks {
			if j, ok := groups[to]; !ok || j == i {
				return c, errf("group %q: fallback for %v goes to %q, which is not another group", g.Name, k, to)
			}
		}
	}
	return c, nil
}

// checkName accepts names safe as metric label values from a bounded set.
func checkName(s string) error {
	if s == "" || len(s) > 64 {
		return errors.New("the Name must be 1 to 64 characters")
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '.', b == ':', b == '-':
		default:
			return fmt.Errorf("the Name %q may hold only [A-Za-z0-9_.:-]", s)
		}
	}
	return nil
}
