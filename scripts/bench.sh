#!/usr/bin/env bash
# make bench: shardkv next to twemproxy + redis-server under redis-benchmark,
# and under many connections with one command in flight each.
# Installs Debian's redis-tools, redis-server and nutcracker when missing, then
# runs the Go harness in integration/bench (arguments are passed to it, e.g.
# `scripts/bench.sh -rounds 1 -skip-mem`). The report goes to stdout;
# progress goes to stderr.
#
#   --baseline REV (or BASELINE=REV): also run every shardkv setup with the
#       binaries of git revision REV, built in a temporary worktree, as rows of
#       their own in the same rounds, and report current / REV per row.
#   BENCH_QUICK=1: small runs and one round, to check the harness itself in
#       about a minute; its numbers are not worth reading.
set -euo pipefail
cd "$(dirname "$0")/.."

baseline="${BASELINE:-}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline)
      [ $# -ge 2 ] || { echo "bench.sh: --baseline needs a git revision" >&2; exit 2; }
      baseline="$2"
      shift 2
      ;;
    --baseline=*) baseline="${1#--baseline=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
  # First, so that arguments given on the command line still win.
  args=(-rounds 1 -n 20000 -n16 100000 -mem-keys 50000 -coll-elems 50000 -pairs 10 -pub-n 20000 "${args[@]}")
fi

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

# 1,000 clients through a proxy hold 1,000 sockets in the proxy and 1,000 in
# the harness, beyond what Debian's default soft limit of 1,024 allows; the
# harness checks what its servers got and says so if it is still too low.
want_fds=8192
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
  hard="$(ulimit -Hn)"
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$want_fds" ]; then
    ulimit -n "$want_fds"
  else
    ulimit -n "$hard"
  fi
fi

# Everything this script creates lives in tmp and goes on exit, failure and
# signal alike: the harness binary, the baseline's worktree and binaries.
tmp="$(mktemp -d "${TMPDIR:-/tmp}/shardkv-bench.XXXXXX")"
worktree=""
child=""
cleanup() {
  if [ -n "$child" ]; then
    # The harness stops its servers on SIGTERM before it exits.
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [ -n "$worktree" ]; then
    git worktree remove --force "$worktree" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  [ -z "$worktree" ] || git worktree prune
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Always rebuilt (a no-op when bin/ is up to date): rows compared against a
# baseline must be the code in this tree, not an older build of it.
make --no-print-directory build >&2
if [ -n "$baseline" ]; then
  commit="$(git rev-parse --verify --quiet "${baseline}^{commit}")" || {
    echo "bench.sh: --baseline $baseline: not a git revision" >&2
    exit 2
  }
  short="$(git rev-parse --short "$commit")"
  echo "bench: building $baseline ($short) in a temporary worktree" >&2
  worktree="$tmp/baseline-src"
  git worktree add --quiet --detach "$worktree" "$commit"
  (cd "$worktree" && go build -o "$tmp/baseline-bin/" ./cmd/shardkv-node ./cmd/shardkv-proxy)
  args=(-baseline-bin "$tmp/baseline-bin" -baseline-rev "$baseline" -baseline-commit "$short" "${args[@]}")
fi
go build -o "$tmp/shardkv-bench" ./integration/bench

# In the background, so that the traps above run while it works: bash runs a
# trap only once its foreground command has ended.
"$tmp/shardkv-bench" -bin bin "${args[@]}" &
child=$!
rc=0
wait "$child" || rc=$?
child=""
exit "$rc"
