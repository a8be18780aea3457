#!/usr/bin/env bash
# Keeps the lottery a compose deployment is ending: copies the central's
# bets.csv and journal (an anonymous volume, gone with `down -v`) and every
# container's log to .data/lotteries/<when it ended>/ beside the compose
# file, and says where. `make docker-compose-down` runs it between `stop`
# and `down`; a failure stops it before `down`, so nothing is thrown away.
#
# usage: scripts/keep-lottery.sh COMPOSE_FILE COMPOSE_COMMAND...
set -euo pipefail

file=$1
shift
compose=("$@" -f "$file")
dir=$(dirname "$file")

server=$("${compose[@]}" ps -a -q server 2>/dev/null || true)
if [[ -z $server ]]; then
    echo "keep-lottery: no central container in $file: no lottery to keep"
    exit 0
fi
when=$(date -u +%Y-%m-%dT%H-%M-%SZ)
to=$dir/.data/lotteries/$when
n=1
while [[ -e $to ]]; do
    to=$dir/.data/lotteries/$when-$n
    n=$((n + 1))
done
to=${to#./}
mkdir -p "$to"
docker cp "$server:/.data/central/." "$to/"
"${compose[@]}" logs --no-color >"$to/logs.txt" 2>&1 || true
bets=$(wc -l <"$to/bets.csv" 2>/dev/null || echo 0)
closed=$(wc -l <"$to/bets.csv.journal" 2>/dev/null || echo 0)
echo "keep-lottery: the ended lottery ($bets bets, $closed agencies closed) is kept in $to/"
