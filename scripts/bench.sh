#!/usr/bin/env bash
# make bench: shardkv next to twemproxy + redis-server under redis-benchmark.
# Installs Debian's redis-tools, redis-server and nutcracker when missing, then
# runs the Go harness in integration/bench (arguments are passed to it, e.g.
# `scripts/bench.sh -rounds 1 -skip-mem`). The report goes to stdout;
# progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nutcracker >/dev/null || need+=(nutcracker)
command -v chrt >/dev/null || need+=(util-linux) # runs the SCHED_BATCH reference setup
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts a redis-server on 6379 after installing it; the harness uses its own ports, so it is left alone.

[ -x bin/shardkv-node ] && [ -x bin/shardkv-proxy ] || make build
exec go run ./integration/bench -bin bin "$@"
