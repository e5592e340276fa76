#!/usr/bin/env bash
# make bench: redis-benchmark against shardkv (a proxy and two shard nodes,
# appendfsync everysec) and, in the same run and interleaved round by round,
# twemproxy (nutcracker) in front of two redis-servers that persist nothing.
# Prints the median requests/s and p50/p99 latency of each setup for SET and
# GET at -P 1 and -P 16, and the ratio shardkv/twemproxy.
#
# Environment: ROUNDS (3), REQUESTS per run (200000), CLIENTS (50).
# Missing tools (redis-benchmark, redis-server, nutcracker) are installed from
# Debian's redis-tools, redis-server and nutcracker packages.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}

install_missing() {
	local pkgs=()
	command -v redis-benchmark >/dev/null 2>&1 || pkgs+=(redis-tools)
	command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
	command -v nutcracker >/dev/null 2>&1 || pkgs+=(nutcracker)
	[ "${#pkgs[@]}" -eq 0 ] && return
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
}
install_missing
[ -x bin/shardkv-node ] && [ -x bin/shardkv-proxy ] || { echo "bench: run make build first" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# A port nobody listens on, below the kernel's ephemeral range.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

wait_ping() {
	for _ in $(seq 100); do
		[ "$(redis-cli -p "$1" PING 2>/dev/null)" = "PONG" ] && return
		sleep 0.1
	done
	echo "bench: nothing answers PING on port $1" >&2
	exit 1
}

# shardkv: two shard nodes and the proxy.
n1=$(free_port); n2=$(free_port); sk=$(free_port)
cat >"$work/map.json" <<JSON
{"shards": [
  {"name": "s0", "start": 0.0, "end": 0.5, "size": 0, "host": "127.0.0.1", "port": $n1},
  {"name": "s1", "start": 0.5, "end": 1.0, "size": 0, "host": "127.0.0.1", "port": $n2}
]}
JSON
for n in "s0 $n1" "s1 $n2"; do
	set -- $n
	bin/shardkv-node -addr "127.0.0.1:$2" -dir "$work/$1" -appendfsync everysec -log-level warn 2>>"$work/shardkv.log" &
	pids+=($!)
	wait_ping "$2"
done
bin/shardkv-proxy -addr "127.0.0.1:$sk" -map "$work/map.json" -log-level warn 2>>"$work/shardkv.log" &
pids+=($!)
wait_ping "$sk"

# twemproxy: two redis-servers without persistence behind nutcracker.
r1=$(free_port); r2=$(free_port); tw=$(free_port)
for p in "$r1" "$r2"; do
	redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
		--dir "$work" --logfile "$work/redis-$p.log" &
	pids+=($!)
	wait_ping "$p"
done
cat >"$work/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$tw
  hash: fnv1a_64
  distribution: ketama
  redis: true
  servers:
   - 127.0.0.1:$r1:1
   - 127.0.0.1:$r2:1
YML
nutcracker -c "$work/nutcracker.yml" -o "$work/nutcracker.log" &
pids+=($!)
wait_ping "$tw"

echo "bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $ROUNDS rounds of $REQUESTS requests, -c $CLIENTS -d 100 -r 100000"
results="$work/results"
for round in $(seq "$ROUNDS"); do
	for setup in "shardkv $sk" "twemproxy $tw"; do
		set -- $setup
		for pipe in 1 16; do
			redis-benchmark -h 127.0.0.1 -p "$2" -c "$CLIENTS" -d 100 -r 100000 -n "$REQUESTS" \
				-P "$pipe" -t set,get --csv 2>/dev/null |
				awk -F, -v s="$1" -v p="$pipe" '{ gsub(/"/, "") } $1 != "test" { print s, p, $1, $2, $5, $7 }' >>"$results"
		done
	done
	echo "bench: round $round of $ROUNDS done" >&2
done

# Median of each (setup, -P, test) over the rounds, then the table.
sort -k1,1 -k2,2n -k3,3 -k4,4n "$results" | awk '
{ k = $1 " " $2 " " $3; n[k]++; rps[k, n[k]] = $4; p50[k, n[k]] = $5; p99[k, n[k]] = $6 }
function med(a, k, c,   i, j, t, v) {
	for (i = 1; i <= c; i++) v[i] = a[k, i]
	for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
}
END {
	printf "%-10s %-4s %-5s %12s %9s %9s\n", "setup", "-P", "test", "requests/s", "p50 ms", "p99 ms"
	for (k in n) {
		split(k, f, " ")
		m[k] = med(rps, k, n[k])
		line[k] = sprintf("%-10s %-4s %-5s %12.0f %9.3f %9.3f", f[1], f[2], f[3], m[k], med(p50, k, n[k]), med(p99, k, n[k]))
	}
	for (k in line) print line[k] | "sort"
	close("sort")
	printf "\n%-4s %-5s %s\n", "-P", "test", "shardkv/twemproxy"
	for (k in m) {
		split(k, f, " ")
		if (f[1] == "shardkv" && (("twemproxy " f[2] " " f[3]) in m))
			printf "%-4s %-5s %.2f\n", f[2], f[3], m[k] / m["twemproxy " f[2] " " f[3]] | "sort -n"
	}
}'
