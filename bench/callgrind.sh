#!/usr/bin/env bash
# Instructions per stored bet: the central under valgrind's callgrind on a
# fixed ingest. Usage: bench/callgrind.sh [SERVER_BIN] [SYNC]
#
#   SERVER_BIN  the central's binary (default: target/release/lottery-server)
#   SYNC        the central's SYNC setting (default: never, so the figure is
#               the central's own work, not the disk's)
#
# The workload is fixed: lottery-bench, 10 agencies x 10,000 bets, seed 1
# (100,000 bets, the same bytes every run). Prints total Ir (instructions
# executed by the central, startup and shutdown included) and Ir per bet.
# KEEP=FILE keeps the callgrind output there (for callgrind_annotate).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$root/target}/release"
server="$(realpath "${1:-$target/lottery-server}")"
sync="${2:-never}"
agencies=10
bets=10000

command -v valgrind >/dev/null || { echo "bench callgrind: valgrind is not installed" >&2; exit 2; }
cargo build --release --workspace --manifest-path "$root/Cargo.toml" >&2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# lottery-bench starts the binary it is given; this one runs the central
# under callgrind (valgrind passes SIGTERM on, and the central exits 0).
cat >"$work/central" <<WRAP
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$server"
WRAP
chmod +x "$work/central"

"$target/lottery-bench" --out "$work" --name callgrind \
    --agencies "$agencies" --bets "$bets" --seed 1 \
    --server-bin "$work/central" --server-env "SYNC=$sync" >"$work/bench.txt"
total="$(sed -n 's/^summary: *//p' "$work/callgrind.out")"
bets_total=$((agencies * bets))
if [ -n "${KEEP:-}" ]; then cp "$work/callgrind.out" "$KEEP"; fi
echo "callgrind: $(basename "$server") SYNC=$sync: $total Ir for $bets_total bets, $((total / bets_total)) Ir/bet"
