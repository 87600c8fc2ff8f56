// Package deploy holds no code: it is the directory of deployment files for
// a service that uses llmkit (Prometheus configuration, recording and alert
// rules with their promtool unit tests, a Grafana dashboard and a
// docker-compose example). It is a Go package so that deploy_test.go can
// check that every metric name those files use is one the metrics package
// exports, and run promtool over them. See docs/deploy.md.
package deploy
