package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

// The files of the compose and Kubernetes topologies, relative to this
// directory. Neither runs here (no Docker, no cluster): these tests parse
// them and check that they agree with each other and with the service.
const (
	alertmanagerFile = "alertmanager.yml"
	dockerfile       = "Dockerfile"
	dockerignore     = "../../.dockerignore"
	k8sDir           = "k8s"
	serviceSources   = "../service"
)

// serviceReads reports whether the service reads the environment variable
// name: its sources (examples/service, the provider picker and the
// constants it uses) mention it.
func serviceReads(t *testing.T, name string) bool {
	t.Helper()
	for _, dir := range []string{serviceSources, "../internal/fromenv", "../../provider/anthropic"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no sources in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(`"`+name+`"`)) {
				return true
			}
		}
	}
	return name == "GOMEMLIMIT" // read by the Go runtime
}

type healthcheck struct {
	Test []string `yaml:"test"`
}

type composeService struct {
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
	Restart     string            `yaml:"restart"`
	Healthcheck *healthcheck      `yaml:"healthcheck"`
	Volumes     []string          `yaml:"volumes"`
	Deploy      struct {
		Replicas  int `yaml:"replicas"`
		Resources struct {
			Limits struct {
				CPUs   string `yaml:"cpus"`
				Memory string `yaml:"memory"`
			} `yaml:"limits"`
		} `yaml:"resources"`
	} `yaml:"deploy"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

func TestComposeTopology(t *testing.T) {
	var c struct {
		Services map[string]composeService `yaml:"services"`
	}
	loadYAML(t, composeFile, &c)
	app := c.Services["app"]

	// The seed's shape: 3 replicas, 0.5 CPU and 512M each, REDIS_URL.
	if app.Deploy.Replicas != 3 || app.Deploy.Resources.Limits.CPUs != "0.5" || app.Deploy.Resources.Limits.Memory != "512M" {
		t.Errorf("app: replicas %d, limits %+v; want the seed's 3 × (0.5 CPU, 512M)", app.Deploy.Replicas, app.Deploy.Resources.Limits)
	}
	for _, v := range []string{"REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "LLMKIT_API_KEYS"} {
		if _, ok := app.Environment[v]; !ok {
			t.Errorf("app does not pass %s through", v)
		}
	}
	for v, val := range app.Environment {
		if !serviceReads(t, v) {
			t.Errorf("app sets %s, which the service does not read", v)
		}
		if strings.Contains(v, "KEY") && val != "" && !strings.HasPrefix(val, "${") {
			t.Errorf("app: %s has a value in the file; keys come from the host's environment", v)
		}
	}
	// The readiness healthcheck runs the service's own probe on /readyz.
	if app.Healthcheck == nil || !slices.Equal(app.Healthcheck.Test, []string{"CMD", "/service", "probe", "/readyz"}) {
		t.Errorf("app healthcheck %+v, want the service's probe of /readyz", app.Healthcheck)
	}
	drain, err := time.ParseDuration(app.Environment["DRAIN_DELAY"])
	grace, err2 := time.ParseDuration(app.StopGracePeriod)
	if err != nil || err2 != nil || grace < drain+30*time.Second {
		t.Errorf("stop_grace_period %q must cover DRAIN_DELAY %q and the 30 s shutdown", app.StopGracePeriod, app.Environment["DRAIN_DELAY"])
	}
	if app.Build == nil || filepath.Join(app.Build.Context, app.Build.Dockerfile) != filepath.Join("../..", "examples/deploy", dockerfile) {
		t.Errorf("app build %+v, want this directory's Dockerfile from the repository root", app.Build)
	}

	for name, s := range c.Services {
		if s.Restart == "" {
			t.Errorf("service %s has no restart policy", name)
		}
		if s.Healthcheck == nil && name != "grafana" {
			t.Errorf("service %s has no healthcheck", name)
		}
	}

	// Prometheus sends alerts to the Alertmanager service, which loads
	// this directory's configuration.
	am, ok := c.Services["alertmanager"]
	if !ok || !slices.ContainsFunc(am.Volumes, func(v string) bool { return strings.HasPrefix(v, "./"+alertmanagerFile+":") }) {
		t.Fatalf("no alertmanager service mounting %s", alertmanagerFile)
	}
	var pc struct {
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
	}
	loadYAML(t, composePromFile, &pc)
	if len(pc.Alerting.Alertmanagers) != 1 || len(pc.Alerting.Alertmanagers[0].StaticConfigs) != 1 ||
		!slices.Equal(pc.Alerting.Alertmanagers[0].StaticConfigs[0].Targets, []string{"alertmanager:9093"}) {
		t.Errorf("%s: alerting block %+v, want the alertmanager service", composePromFile, pc.Alerting)
	}
	var amc struct {
		Route struct {
			Receiver string `yaml:"receiver"`
			Routes   []struct {
				Matchers []string `yaml:"matchers"`
				Receiver string   `yaml:"receiver"`
			} `yaml:"routes"`
		} `yaml:"route"`
	}
	loadYAML(t, alertmanagerFile, &amc)
	if !slices.ContainsFunc(amc.Route.Routes, func(r struct {
		Matchers []string `yaml:"matchers"`
		Receiver string   `yaml:"receiver"`
	}) bool {
		return slices.Contains(r.Matchers, `severity="critical"`) && r.Receiver == "pager"
	}) {
		t.Errorf("%s: critical alerts are not routed to the pager", alertmanagerFile)
	}
}

// The build context is the repository root: .dockerignore keeps secrets
// and history out and the Go sources in.
func TestDockerBuildContext(t *testing.T) {
	b, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	for _, p := range []string{".git", "**/.env", "**/*.pem"} {
		if !slices.Contains(patterns, p) {
			t.Errorf(".dockerignore lacks %s", p)
		}
	}
	for _, p := range patterns {
		for _, needed := range []string{"go.mod", "go.sum", "examples/go.mod", "examples/service/main.go", "llm/client.go"} {
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "/"), needed); ok || strings.TrimPrefix(p, "/") == filepath.Dir(needed) {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, needed)
			}
		}
	}
	d, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GOWORK=off", "./service", "nonroot", "ENTRYPOINT [\"/service\"]"} {
		if !bytes.Contains(d, []byte(want)) {
			t.Errorf("%s lacks %q", dockerfile, want)
		}
	}
}

// k8sObject is the part of a Kubernetes object these tests read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Resources []string       `yaml:"resources"` // a Kustomization's
	Spec      yaml.Node      `yaml:"spec"`
	Data      map[string]any `yaml:"data"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type deploymentSpec struct {
	Replicas int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
			Containers                    []struct {
				Name  string `yaml:"name"`
				Image string `yaml:"image"`
				Ports []struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
				} `yaml:"ports"`
				Env []struct {
					Name      string    `yaml:"name"`
					Value     string    `yaml:"value"`
					ValueFrom yaml.Node `yaml:"valueFrom"`
				} `yaml:"env"`
				Resources struct {
					Requests map[string]string `yaml:"requests"`
					Limits   map[string]string `yaml:"limits"`
				} `yaml:"resources"`
				ReadinessProbe *probe `yaml:"readinessProbe"`
				LivenessProbe  *probe `yaml:"livenessProbe"`
			} `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
	Metrics     []struct {
		Type     string `yaml:"type"`
		Resource *struct {
			Name string `yaml:"name"`
		} `yaml:"resource"`
		Pods *struct {
			Metric struct {
				Name string `yaml:"name"`
			} `yaml:"metric"`
		} `yaml:"pods"`
	} `yaml:"metrics"`
}

// loadK8s decodes every document of every YAML file in k8s/, by file.
func loadK8s(t *testing.T) map[string][]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	out := map[string][]k8sObject{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" && o.Kind != "Kustomization" {
				t.Errorf("%s: an object without apiVersion, kind or name: %+v", f, o)
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], o)
		}
	}
	return out
}

func decodeSpec(t *testing.T, o k8sObject, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

func TestKubernetesManifests(t *testing.T) {
	files := loadK8s(t)
	byKind := map[string]k8sObject{}
	for _, objs := range files {
		for _, o := range objs {
			if _, dup := byKind[o.Kind]; dup {
				t.Errorf("two objects of kind %s", o.Kind)
			}
			byKind[o.Kind] = o
		}
	}
	// The kustomization lists every other file, and only those.
	k, ok := byKind["Kustomization"]
	if !ok {
		t.Fatal("no kustomization.yaml")
	}
	var others []string
	for f := range files {
		if f != "kustomization.yaml" {
			others = append(others, f)
		}
	}
	slices.Sort(others)
	listed := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(listed, others) {
		t.Errorf("kustomization lists %v, the directory holds %v", listed, others)
	}
	for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"} {
		if _, ok := byKind[kind]; !ok {
			t.Fatalf("no %s", kind)
		}
	}

	// The Deployment: the seed's limits, the probes on the right paths.
	dep := byKind["Deployment"]
	var ds deploymentSpec
	decodeSpec(t, dep, &ds)
	if ds.Replicas < 3 || len(ds.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d replicas, %d containers", ds.Replicas, len(ds.Template.Spec.Containers))
	}
	for k, v := range ds.Selector.MatchLabels {
		if ds.Template.Metadata.Labels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match its pods' labels", k, v)
		}
	}
	c := ds.Template.Spec.Containers[0]
	if c.Resources.Limits["cpu"] != "500m" || c.Resources.Limits["memory"] != "512Mi" || c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
		t.Errorf("resources %+v, want requests and the seed's limits (500m, 512Mi)", c.Resources)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8000 {
		t.Errorf("ports %+v, want http on 8000", c.Ports)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port != "http" {
		t.Errorf("readinessProbe %+v, want /readyz on http", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != "http" {
		t.Errorf("livenessProbe %+v, want /healthz on http", p)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if !serviceReads(t, e.Name) {
			t.Errorf("the Deployment sets %s, which the service does not read", e.Name)
		}
		if (strings.Contains(e.Name, "KEY") && e.Name != "LLMKIT_API_KEYS_FILE" || e.Name == "REDIS_URL") && e.ValueFrom.Kind == 0 {
			t.Errorf("%s is set in the manifest; it must come from a Secret", e.Name)
		}
	}
	if env["LISTEN_ADDR"] != ":8000" {
		t.Errorf("LISTEN_ADDR %q, want :8000 (the container port)", env["LISTEN_ADDR"])
	}
	drain, err := time.ParseDuration(env["DRAIN_DELAY"])
	if err != nil || time.Duration(ds.Template.Spec.TerminationGracePeriodSeconds)*time.Second < drain+30*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d must cover DRAIN_DELAY %q and the 30 s shutdown",
			ds.Template.Spec.TerminationGracePeriodSeconds, env["DRAIN_DELAY"])
	}

	// The Service and the PDB select the Deployment's pods.
	var ss struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	decodeSpec(t, byKind["Service"], &ss)
	var ps struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	decodeSpec(t, byKind["PodDisruptionBudget"], &ps)
	for what, sel := range map[string]map[string]string{"Service": ss.Selector, "PodDisruptionBudget": ps.Selector.MatchLabels} {
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", what)
		}
		for k, v := range sel {
			if ds.Template.Metadata.Labels[k] != v {
				t.Errorf("%s selector %s=%s matches no pod of the Deployment", what, k, v)
			}
		}
	}
	if len(ss.Ports) != 1 || ss.Ports[0].TargetPort != "http" {
		t.Errorf("Service ports %+v, want targetPort http", ss.Ports)
	}

	// The HPA scales the Deployment on CPU and on llm_active_requests,
	// which the metrics package exports and the adapter serves.
	var hs hpaSpec
	decodeSpec(t, byKind["HorizontalPodAutoscaler"], &hs)
	if hs.ScaleTargetRef.Kind != "Deployment" || hs.ScaleTargetRef.Name != dep.Metadata.Name || hs.MinReplicas < 2 || hs.MaxReplicas <= hs.MinReplicas {
		t.Errorf("HPA %+v", hs)
	}
	var cpu bool
	var podMetric string
	for _, m := range hs.Metrics {
		switch {
		case m.Type == "Resource" && m.Resource != nil && m.Resource.Name == "cpu":
			cpu = true
		case m.Type == "Pods" && m.Pods != nil:
			podMetric = m.Pods.Metric.Name
		}
	}
	if !cpu || podMetric != "llm_active_requests" {
		t.Fatalf("HPA metrics: cpu %v, pods metric %q; want cpu and llm_active_requests", cpu, podMetric)
	}
	if !exportedFamilies(t)[podMetric] {
		t.Errorf("the HPA scales on %s, which the metrics package does not export", podMetric)
	}
	raw, _ := byKind["ConfigMap"].Data["config.yaml"].(string)
	var adapter struct {
		Rules []struct {
			SeriesQuery string `yaml:"seriesQuery"`
			Name        struct {
				Matches string `yaml:"matches"`
				As      string `yaml:"as"`
			} `yaml:"name"`
			MetricsQuery string `yaml:"metricsQuery"`
		} `yaml:"rules"`
	}
	if err := yaml.Unmarshal([]byte(raw), &adapter); err != nil || len(adapter.Rules) == 0 {
		t.Fatalf("prometheus-adapter config.yaml: %v %q", err, raw)
	}
	served := false
	for _, r := range adapter.Rules {
		if r.Name.As == podMetric && strings.HasPrefix(r.SeriesQuery, podMetric+"{") &&
			strings.Contains(r.MetricsQuery, "<<.Series>>") && strings.Contains(r.MetricsQuery, "<<.LabelMatchers>>") {
			served = true
		}
	}
	if !served {
		t.Errorf("no prometheus-adapter rule serves %s", podMetric)
	}
}

// amtool checks the Alertmanager configuration. Without it the test fails
// when CI is set and is skipped otherwise.
func TestAlertmanagerConfig(t *testing.T) {
	bin, err := exec.LookPath("amtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("amtool is not on PATH and CI is set: install Debian's prometheus-alertmanager package")
		}
		t.Skip("amtool is not on PATH (Debian's prometheus-alertmanager has it); set CI=1 to make this a failure")
	}
	if out, err := exec.Command(bin, "check-config", alertmanagerFile).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
}
