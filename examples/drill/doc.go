// Package drill is an operator's drill of examples/service, run as a Go
// test (TestDrill): three replicas behind nginx sharing Redis, a real
// Prometheus with examples/deploy's rules (their `for:` divided by
// TimeScale), the seed document's two Locust user classes, and then a
// total outage of the provider (examples/drill/mock). It asserts that the
// critical alert goes pending within its scaled window, that /readyz stays
// 200 on every replica, and that no request gets a connection error.
//
// The package's non-test code generates the drill's configuration: the
// scaled rule files, nginx.conf and prometheus.yml. docs/drill.md says how
// to run it.
package drill
