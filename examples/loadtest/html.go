package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeReports writes report.json and report.html into dir.
func writeReports(dir string, rep *report) error {
	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := renderHTML(&buf, rep); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), buf.Bytes(), 0o644)
}

// figure is one plot, embedded in the page as an SVG data URI: the report
// is a single file that loads nothing from anywhere.
type figure struct {
	Title string
	Src   template.URL
}

// svgFigure renders p with gonum/plot's SVG backend.
func svgFigure(title string, p *plot.Plot) (figure, error) {
	wt, err := p.WriterTo(18*vg.Centimeter, 9*vg.Centimeter, "svg")
	if err != nil {
		return figure{}, err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return figure{}, err
	}
	return figure{Title: title, Src: template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))}, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top, p.Legend.Left, p.Legend.XOffs = true, true, vg.Points(8)
	p.Add(plotter.NewGrid())
	return p
}

// figures makes every plot the report's data supports.
func figures(rep *report) ([]figure, error) {
	var figs []figure
	add := func(p *plot.Plot, err error) error {
		if err != nil {
			return err
		}
		// Room above the data for the legend, and latencies from zero.
		p.Y.Min, p.Y.Max = 0, max(p.Y.Max, 1)*1.3
		f, err := svgFigure(p.Title.Text, p)
		figs = append(figs, f)
		return err
	}
	// The timeline: a sweep's steps one after the other.
	var tl []windowStats
	if rep.Sweep != nil {
		off := 0.0
		for _, st := range rep.Sweep.Steps {
			for _, w := range st.Timeline {
				w.StartSec += off
				tl = append(tl, w)
			}
			off += st.ElapsedSec
		}
	} else {
		tl = rep.Result.Timeline
	}
	if err := add(timelinePlot(tl)); err != nil {
		return nil, err
	}
	for _, m := range []string{"e2e", "ttft"} {
		if rep.Result.Latency[m].N == 0 {
			continue
		}
		if err := add(classPlot(&rep.Result, m)); err != nil {
			return nil, err
		}
	}
	if rep.Sweep != nil && len(rep.Sweep.Steps) > 0 {
		if err := add(sweepThroughputPlot(rep.Sweep)); err != nil {
			return nil, err
		}
		if err := add(sweepLatencyPlot(rep.Sweep, rep.Config.SLO)); err != nil {
			return nil, err
		}
	}
	return figs, nil
}

func timelinePlot(tl []windowStats) (*plot.Plot, error) {
	p := newPlot("Latency over time", "seconds since start", "milliseconds")
	series := []struct {
		name string
		get  func(w windowStats) dist
		q    func(d dist) float64
	}{
		{"e2e p50", func(w windowStats) dist { return w.E2E }, func(d dist) float64 { return d.P50 }},
		{"e2e p99", func(w windowStats) dist { return w.E2E }, func(d dist) float64 { return d.P99 }},
		{"ttft p50", func(w windowStats) dist { return w.TTFT }, func(d dist) float64 { return d.P50 }},
		{"ttft p99", func(w windowStats) dist { return w.TTFT }, func(d dist) float64 { return d.P99 }},
	}
	var args []any
	for _, s := range series {
		var xys plotter.XYs
		for _, w := range tl {
			if d := s.get(w); d.N > 0 {
				xys = append(xys, plotter.XY{X: w.StartSec, Y: s.q(d)})
			}
		}
		if len(xys) > 0 {
			args = append(args, s.name, xys)
		}
	}
	if len(args) == 0 {
		p.Title.Text += " (no answered request)"
		return p, nil
	}
	return p, plotutil.AddLinePoints(p, args...)
}

// classPlot is a grouped bar chart: p50, p90 and p99 of metric m for each
// prompt class.
func classPlot(s *stats, m string) (*plot.Plot, error) {
	p := newPlot("Percentiles by prompt class: "+m, "", "milliseconds")
	names := make([]string, len(classes))
	qs := []struct {
		name string
		q    func(d dist) float64
	}{{"p50", func(d dist) float64 { return d.P50 }}, {"p90", func(d dist) float64 { return d.P90 }}, {"p99", func(d dist) float64 { return d.P99 }}}
	w := vg.Points(18)
	for i, q := range qs {
		vals := make(plotter.Values, len(classes))
		for c, cl := range classes {
			names[c] = cl.Name
			vals[c] = q.q(s.ByClass[cl.Name][m])
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(i-1)
		p.Add(bars)
		p.Legend.Add(q.name, bars)
	}
	p.NominalX(names...)
	return p, nil
}

func sweepXYs(sw *sweepResult, y func(s *stats) float64) plotter.XYs {
	xys := make(plotter.XYs, len(sw.Steps))
	for i := range sw.Steps {
		xys[i] = plotter.XY{X: sw.Steps[i].Offered, Y: y(&sw.Steps[i])}
	}
	return xys
}

func sweepThroughputPlot(sw *sweepResult) (*plot.Plot, error) {
	p := newPlot("Throughput and goodput", "offered load ("+sw.Over+")", "requests per second")
	return p, plotutil.AddLinePoints(p,
		"answered/s", sweepXYs(sw, func(s *stats) float64 { return s.RequestsPerSec }),
		"goodput/s", sweepXYs(sw, func(s *stats) float64 { return s.GoodputPerSec }))
}

func sweepLatencyPlot(sw *sweepResult, limits slo) (*plot.Plot, error) {
	p := newPlot("p99 latency over the sweep", "offered load ("+sw.Over+")", "milliseconds")
	err := plotutil.AddLinePoints(p,
		"ttft p99", sweepXYs(sw, func(s *stats) float64 { return s.Latency["ttft"].P99 }),
		"e2e p99", sweepXYs(sw, func(s *stats) float64 { return s.Latency["e2e"].P99 }))
	if err != nil {
		return nil, err
	}
	for i, l := range []struct {
		name string
		d    float64
	}{{"ttft SLO", float64(limits.TTFT.Microseconds()) / 1000}, {"e2e SLO", float64(limits.E2E.Microseconds()) / 1000}} {
		if l.d <= 0 {
			continue
		}
		f := plotter.NewFunction(func(float64) float64 { return l.d })
		f.Color = color.RGBA{R: 200, A: 255}
		f.Dashes = plotutil.Dashes(i + 1)
		p.Add(f)
		p.Legend.Add(l.name, f)
	}
	return p, nil
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>loadtest report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:60em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}
figure{margin:1em 0}img.plot{width:100%;max-width:54em}
.met{color:#070}.missed{color:#b00}
</style></head><body>
<h1>loadtest report</h1>
<p>{{.Rep.Config.URL}}, profile <b>{{.Rep.Config.Profile}}</b>, started {{.Rep.Started.Format "2006-01-02 15:04:05 UTC"}}.
{{with .Rep.Result}}{{.Sent}} requests in {{printf "%.1f" .ElapsedSec}} s: {{printf "%.1f" .RequestsPerSec}} answered/s,
goodput {{printf "%.1f" .GoodputPerSec}}/s, {{printf "%.0f" .OutputTokPerSec}} output tokens/s.{{end}}</p>
{{with .Rep.Result.SLO}}{{if .Set}}<p class="{{if .Met}}met{{else}}missed{{end}}">SLO {{if .Met}}met{{else}}missed{{end}}:
{{pct .Attainment}} of requests met every limit ({{$.Rep.Config.SLO}}), target {{pct .Target}}.
{{if .Broken}}Over the limit at that percentile: {{range .Broken}}{{.}} {{end}}{{end}}</p>{{end}}{{end}}
{{with .Rep.Sweep}}<p>Sweep over {{.Over}}: {{.Reason}}.</p>
<table><tr><th>{{.Over}}</th><th>sent</th><th>answered/s</th><th>goodput/s</th><th>p99 ttft ms</th><th>p99 e2e ms</th><th>SLO attainment</th></tr>
{{range .Steps}}<tr><td>{{.Offered}}</td><td>{{.Sent}}</td><td>{{printf "%.1f" .RequestsPerSec}}</td><td>{{printf "%.1f" .GoodputPerSec}}</td>
<td>{{printf "%.1f" (index .Latency "ttft").P99}}</td><td>{{printf "%.1f" (index .Latency "e2e").P99}}</td><td>{{pct .SLO.Attainment}}</td></tr>
{{end}}</table>{{end}}
<h2>Latency{{if .Rep.Sweep}} (last step){{end}}</h2>
<table><tr><th>ms</th><th>n</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>
{{range $m := .Metrics}}{{with index $.Rep.Result.Latency $m}}{{if .N}}<tr><td>{{$m}}</td><td>{{.N}}</td><td>{{.P50}}</td><td>{{.P90}}</td><td>{{.P95}}</td><td>{{.P99}}</td><td>{{.P999}}</td><td>{{.Max}}</td></tr>{{end}}{{end}}
{{end}}</table>
<h2>Outcomes</h2>
<table><tr><th>outcome</th><th>requests</th></tr>{{range $k, $v := .Rep.Result.Outcomes}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}
{{range $k, $v := .Rep.Result.Statuses}}<tr><td>HTTP {{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>
<h2>Plots</h2>
{{range .Figures}}<figure><img class="plot" alt="{{.Title}}" src="{{.Src}}"><figcaption>{{.Title}}</figcaption></figure>
{{end}}
<script>
// Marks each plot once the browser has decoded it: what a headless check reads.
window.addEventListener("load", function () {
  document.querySelectorAll("img.plot").forEach(function (img) {
    img.dataset.rendered = String(img.complete && img.naturalWidth > 0);
  });
});
</script>
</body></html>
`))

func renderHTML(buf *bytes.Buffer, rep *report) error {
	figs, err := figures(rep)
	if err != nil {
		return err
	}
	return page.Execute(buf, struct {
		Rep     *report
		Figures []figure
		Metrics []string
	}{rep, figs, metricNames[:]})
}
