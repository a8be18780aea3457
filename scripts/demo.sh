#!/usr/bin/env bash
# The whole lottery on this machine: the central and 5 agencies on loopback.
# Uses .data/agency-1..5.csv, or 5 synthetic files of its own where one is
# missing; runs everything,
# prints each agency's winners, then stops the central with SIGTERM.
set -euo pipefail

cd "$(dirname "$0")/.."
AGENCIES=${AGENCIES:-5}
PORT=${DEMO_PORT:-12345}
BIN=target/release

cargo build --release --workspace --quiet

# Each run is a new lottery in a directory of its own, so a second run
# never meets the first one's files (nor docker's, kept elsewhere).
run=.data/demo
rm -rf "$run"
mkdir -p "$run/logs"

# The agency files of .data/ when there is one for every agency; else
# synthetic ones in the run's directory (the files of .data/ are left alone,
# whatever agency count they were made for).
data=.data
expected=.data/expected-winners.txt
for i in $(seq 1 "$AGENCIES"); do
    if [ ! -f "$data/agency-$i.csv" ]; then
        echo "demo: no $data/agency-$i.csv, making $AGENCIES synthetic agency files in $run/agencies/"
        data=$run/agencies
        expected=$data/expected-winners.txt
        "$BIN/lottery-gen" --agencies "$AGENCIES" --bets 20000 --seed 7 --out "$data"
        break
    fi
done

SERVER_IP=127.0.0.1 SERVER_PORT=$PORT AGENCIES=$AGENCIES \
BETS_FILE="$run/bets.csv" LOGGING_LEVEL=INFO \
    "$BIN/lottery-server" 2>"$run/logs/central.log" &
central=$!
trap 'kill "$central" 2>/dev/null || true' EXIT

pids=()
for i in $(seq 1 "$AGENCIES"); do
    CLI_ID=$i CLI_SERVER_ADDRESS=127.0.0.1:$PORT CLI_DATA_FILE=$data/agency-$i.csv \
    CLI_BATCH_MAXAMOUNT=${CLI_BATCH_MAXAMOUNT:-100} CLI_LOG_LEVEL=INFO \
        "$BIN/lottery-client" 2>"$run/logs/agency-$i.log" &
    pids+=($!)
done

status=0
for i in $(seq 1 "$AGENCIES"); do
    if wait "${pids[$((i - 1))]}"; then
        line=$(grep -o 'cant_ganadores: [0-9]*' "$run/logs/agency-$i.log" | tail -n 1)
        generated=""
        if [ -f "$expected" ]; then
            generated=$(awk -v a="$i" '$1 == a { print " (generated with " $2 ")" }' "$expected")
        fi
        echo "agency $i: ${line:-no winners line}$generated"
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
