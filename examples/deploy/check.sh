#!/usr/bin/env bash
# Validates the Prometheus files in this directory with promtool:
#   check config (both configs, which also loads their rule files),
#   check rules, and the rule unit tests in rules_test.yml.
# When promtool is missing it installs Debian's "prometheus" package, which
# ships promtool, but only as root (or with passwordless sudo) on a system
# with apt-get; anywhere else it stops with an error saying what to install.
# Exits non-zero on the first failure. Called from .ci/run; deploy_test.go
# runs the same three promtool steps.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

install_promtool() {
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo="sudo -n"
		else
			return 1
		fi
	fi
	command -v apt-get >/dev/null 2>&1 || return 1
	echo "check.sh: promtool not found; installing Debian's prometheus package" >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2
}

if ! command -v promtool >/dev/null 2>&1; then
	if ! install_promtool || ! command -v promtool >/dev/null 2>&1; then
		cat >&2 <<'MSG'
check.sh: error: promtool is not on PATH and could not be installed
  (installing needs root or passwordless sudo, and apt-get).
  Install it yourself, then re-run:
    Debian/Ubuntu:  apt-get install prometheus
    any system:     the prometheus-*.tar.gz release from
                    https://github.com/prometheus/prometheus/releases (contains promtool)
MSG
		exit 2
	fi
fi

echo "check.sh: $(promtool --version 2>&1 | head -n 1)"
set -x
promtool check config prometheus.yml
promtool check config prometheus.compose.yml
promtool check rules recording_rules.yml alert_rules.yml
promtool test rules rules_test.yml
