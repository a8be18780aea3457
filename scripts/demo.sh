#!/usr/bin/env bash
# The whole lottery on this machine: the central and 5 agencies on loopback.
# Makes 5 synthetic agency files in .data/ if there are none, runs everything,
# prints each agency's winners, then stops the central with SIGTERM.
set -euo pipefail

cd "$(dirname "$0")/.."
AGENCIES=${AGENCIES:-5}
PORT=${DEMO_PORT:-12345}
BIN=target/release

cargo build --release --workspace --quiet

mkdir -p .data
if ! ls .data/agency-*.csv >/dev/null 2>&1; then
    echo "demo: no agency files in .data/, making $AGENCIES synthetic ones"
    "$BIN/lottery-gen" --agencies "$AGENCIES" --bets 20000 --seed 7 --out .data
fi

run=.data/demo
rm -rf "$run"
mkdir -p "$run/logs"

SERVER_IP=127.0.0.1 SERVER_PORT=$PORT AGENCIES=$AGENCIES \
BETS_FILE="$run/bets.csv" LOGGING_LEVEL=INFO \
    "$BIN/lottery-server" 2>"$run/logs/central.log" &
central=$!
trap 'kill "$central" 2>/dev/null || true' EXIT

pids=()
for i in $(seq 1 "$AGENCIES"); do
    CLI_ID=$i CLI_SERVER_ADDRESS=127.0.0.1:$PORT CLI_DATA_FILE=.data/agency-$i.csv \
    CLI_BATCH_MAXAMOUNT=${CLI_BATCH_MAXAMOUNT:-100} CLI_LOG_LEVEL=INFO \
        "$BIN/lottery-client" 2>"$run/logs/agency-$i.log" &
    pids+=($!)
done

status=0
for i in $(seq 1 "$AGENCIES"); do
    if wait "${pids[$((i - 1))]}"; then
        line=$(grep -o 'cant_ganadores: [0-9]*' "$run/logs/agency-$i.log" | tail -n 1)
        expected=""
        if [ -f .data/expected-winners.txt ]; then
            expected=$(awk -v a="$i" '$1 == a { print " (generated with " $2 ")" }' .data/expected-winners.txt)
        fi
        echo "agency $i: ${line:-no winners line}$expected"
    else
        code=$?
        echo "agency $i: exited with code $code (see $run/logs/agency-$i.log)"
        status=1
    fi
done

kill -TERM "$central"
wait "$central" || { echo "central: exited with code $?"; status=1; }
trap - EXIT
stored=$(wc -l <"$run/bets.csv")
batches=$(grep -c 'action: apuesta_recibida | result: success' "$run/logs/central.log" || true)
echo "central: $stored bets stored in $run/bets.csv from $batches batches; logs in $run/logs/"
exit $status
