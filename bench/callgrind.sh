#!/usr/bin/env bash
# callgrind.sh counts the instructions one call costs through each stack of
# BenchmarkWholeStack (compare_test.go) and prints ours against the
# hand-written reference. Nanoseconds move by ±30% on shared VMs; these
# counts repeat within about 1%.
#
#   bench/callgrind.sh                 # miss and hit, N=5000
#   N=20000 bench/callgrind.sh miss    # one case, more calls
#   PACKAGES=1 bench/callgrind.sh      # and where each stack's go, by package
#
# For each case and contender it runs the benchmark binary under
# valgrind --tool=callgrind twice, with -test.benchtime=Nx and =2x, and
# reports (Ir(N) - Ir(2)) / (N - 2): everything a run does whatever its
# number of calls (start-up, building the stack, warming the cache) is in
# both totals and cancels. GOGC=off keeps the collector out (allocation's
# own instructions are counted, not the collections they would cause);
# asyncpreemptoff and cpu.rdtscp=off make the runtime take the same path
# every run; -test.cpu 1 (one P) keeps the scheduler from spinning on a
# second one (CPU=2 to try it: the counts then stop repeating). Counts are
# of every thread, so work a stack hands to its own goroutines is counted
# too.
#
# It exits 1 when ours is over its budget against the reference: 1.3x
# the instructions on a miss, 3x on a hit (doc.go).
#
# Needs valgrind and go. Takes under a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"

N=${N:-5000}
CPU=${CPU:-1}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(miss hit)
contenders=(provider reference ours ours-logging)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/bench.test" .

# by_package FILE prints each Go package's instructions in a callgrind
# output file (a function's own, not those of what it calls), by package.
by_package() {
	callgrind_annotate --auto=no --threshold=100 "$1" | awk '
		/^ *[0-9,]+ +\([^)]*\) +[^ ]*:/ {
			ir = $1; gsub(",", "", ir)
			fn = $0; sub(/^ *[0-9,]+ +\([^)]*\) +[^:]*:/, "", fn); sub(/ .*/, "", fn)
			head = fn; sub(/[([].*/, "", head) # type arguments name other packages
			rest = head; pos = 0
			while ((i = index(rest, "/")) > 0) { pos += i; rest = substr(rest, i + 1) }
			dot = index(rest, ".")
			pkg = dot > 0 ? substr(head, 1, pos + dot - 1) : head
			sum[pkg] += ir
		}
		END { for (p in sum) print p, sum[p] }'
}

# packages CASE CONTENDER prints the instructions per call of each package
# of the largest, then the heaviest first.
packages() {
	local big="$tmp/cg.$1.$2.$N" small="$tmp/cg.$1.$2.2"
	[ -f "$big" ] || return 0
	echo "$1/$2, instructions per call by package:"
	join <(by_package "$big" | sort) <(by_package "$small" | sort) -a 1 -e 0 -o 0,1.2,2.2 |
		awk -v n="$N" '{ d = ($2 - $3) / (n - 2); if (d >= 20) printf "%8d  %s\n", d, $1 }' |
		sort -rn | head -20
}

# instructions CASE CONTENDER CALLS prints the total instruction count of
# one run, or nothing when the benchmark does not exist (ours before the
# stack package does, provider for hits).
instructions() {
	local out="$tmp/cg.$1.$2.$3"
	GOGC=off GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off \
		valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$tmp/bench.test" -test.run '^$' -test.bench "^BenchmarkWholeStack\$/^$1\$/^$2\$" \
		-test.benchtime "${3}x" -test.cpu "$CPU" >"$out.log" 2>&1 ||
		{ echo "callgrind.sh: $1/$2 failed:" >&2; cat "$out.log" >&2; exit 1; }
	grep -q "^BenchmarkWholeStack/$1/$2" "$out.log" || return 0
	awk '/^summary:/ { print $2 }' "$out"
}

declare -A budget=([miss]=1.3 [hit]=3)
over=0

printf '%-8s %-10s %12s %8s %8s\n' case stack instr/op vs-ref budget
for c in "${cases[@]}"; do
	declare -A per=()
	for s in "${contenders[@]}"; do
		big=$(instructions "$c" "$s" "$N")
		[ -n "$big" ] || continue
		small=$(instructions "$c" "$s" 2)
		per[$s]=$(((big - small) / (N - 2)))
	done
	for s in "${contenders[@]}"; do
		[ -n "${per[$s]:-}" ] || continue
		ratio="" verdict=""
		if [ -n "${per[reference]:-}" ] && [ "$s" != provider ]; then
			ratio=$(awk -v a="${per[$s]}" -v b="${per[reference]}" 'BEGIN { printf "%.2fx", a / b }')
		fi
		if [ "$s" = ours ] && [ -n "$ratio" ] && [ -n "${budget[$c]:-}" ]; then
			verdict="${budget[$c]}x"
			if awk -v r="${ratio%x}" -v b="${budget[$c]}" 'BEGIN { exit !(r > b) }'; then
				verdict="$verdict OVER"
				over=1
			fi
		fi
		printf '%-8s %-10s %12d %8s %8s\n' "$c" "$s" "${per[$s]}" "$ratio" "$verdict"
	done
	unset per
done
if [ -n "${PACKAGES:-}" ]; then
	for c in "${cases[@]}"; do
		for s in "${contenders[@]}"; do
			[ "$s" = provider ] || packages "$c" "$s"
		done
	done
fi
exit "$over"
