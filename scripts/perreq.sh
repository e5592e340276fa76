#!/usr/bin/env bash
# perreq.sh PORT TEST P N PID...: run redis-benchmark against 127.0.0.1:PORT
# (-c 50 -d 100 -r 100000 -t TEST -P P -n N) and print, for each PID, its CPU
# time per request (from /proc/PID/stat) and, when perf is installed, its
# system calls and context switches per request. The servers must already
# be running; docs/BENCHMARKS.md quotes its output.
set -euo pipefail
if [ $# -lt 5 ]; then
	echo "usage: $0 PORT TEST P N PID..." >&2
	exit 2
fi
port=$1 test=$2 pipeline=$3 n=$4
shift 4
tick=$(getconf CLK_TCK)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
declare -A cpu0
perfpids=()
for pid in "$@"; do
	cpu0[$pid]=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	if command -v perf >/dev/null; then
		perf stat -x, -o "$dir/perf.$pid" -p "$pid" -e 'syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_pwrite64,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,context-switches' &
		perfpids+=($!)
	fi
done
sleep 0.3
redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -d 100 -r 100000 -t "$test" -P "$pipeline" -n "$n" -q 2>/dev/null |
	tr '\r' '\n' | grep 'per second' | tail -1
for p in "${perfpids[@]}"; do kill -INT "$p"; done
wait "${perfpids[@]}" 2>/dev/null || true
for pid in "$@"; do
	cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	line="$(cat "/proc/$pid/comm") ($pid): cpu_us=$(echo "scale=2; ($cpu1 - ${cpu0[$pid]}) * 1000000 / $tick / $n" | bc)"
	if [ -f "$dir/perf.$pid" ]; then
		line="$line $(awk -F, -v n="$n" '/^[0-9.]/ { v = $1 / n; name = $3; sub("syscalls:sys_enter_", "", name); if (v > 0.0005) printf "%s=%.3f ", name, v }' "$dir/perf.$pid")"
	fi
	echo "$line"
done
