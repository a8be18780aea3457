#!/usr/bin/env bash
# Keeps the lottery a compose deployment is ending: copies the central's
# bets.csv and journal (an anonymous volume, gone with `down -v`) and every
# container's log to .data/lotteries/<when it ended>/ beside the compose
# file, and says where. `make docker-compose-down` runs it between `stop`
# and `down`; a failure stops it before `down`, so nothing is thrown away.
#
# A deployment written with `generar-compose.sh --postgres` keeps its bets
# in its pg_auto_failover formation instead: the monitor and both nodes,
# stopped with the rest, are started again (a node alone, cut off from the
# monitor and its standby, would stop serving within seconds), and the
# node that takes writes gives `pg_dump` of the database `lottery` into
# lottery.sql (plain SQL: `psql -f lottery.sql` into an empty database
# gives it back); the central's image's /lottery-export, run on the
# database's network with the central's STORAGE, writes bets.csv as the
# CSV store would have; then what was started is stopped again. STORAGE
# holds the database's password: it reaches `docker run` through the
# environment, never on a command line.
#
# What it keeps holds people's names and documents, so it is readable by
# this user only: directories 0700, files 0600, whatever modes the files
# had in the container (an older central made them 0644).
#
# usage: scripts/keep-lottery.sh COMPOSE_FILE COMPOSE_COMMAND...
set -euo pipefail
umask 077

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
chmod 700 "$dir/.data/lotteries" "$to"
docker cp "$server:/.data/central/." "$to/"
# docker cp gives the files the modes they had in the container.
chmod -R go= "$to"
"${compose[@]}" logs --no-color >"$to/logs.txt" 2>&1 || true

monitor=$("${compose[@]}" ps -a -q monitor 2>/dev/null || true)
if [[ -z $monitor ]]; then
    bets=$(wc -l <"$to/bets.csv" 2>/dev/null || echo 0)
    closed=$(wc -l <"$to/bets.csv.journal" 2>/dev/null || echo 0)
    echo "keep-lottery: the ended lottery ($bets bets, $closed agencies closed) is kept in $to/"
    exit 0
fi
formation=("$monitor")
for node in node1 node2; do
    formation+=("$("${compose[@]}" ps -a -q "$node")")
done
started=()
for container in "${formation[@]}"; do
    if [[ $(docker inspect --format '{{.State.Running}}' "$container") != true ]]; then
        docker start "$container" >/dev/null
        started+=("$container")
    fi
done
# The node that takes writes now, as a read-write session of libpq finds
# it (out of recovery, not read-only), or nothing.
writable_node() {
    local node
    for node in "${formation[@]:1}"; do
        if [[ $(docker exec "$node" psql --username=postgres --dbname=postgres --no-psqlrc --tuples-only --no-align \
            --command "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'" 2>/dev/null) == t ]]; then
            echo "$node"
            return
        fi
    done
}

# Dumps the database and exports bets.csv from the node that takes writes.
# A formation just started again may still change which node that is (its
# monitor restarts a node's server as it assigns the roles): a try cut
# short that way fails, and is made again.
keep_once() {
    primary=$(writable_node)
    [[ -n $primary ]] || return 1
    docker exec "$primary" pg_dump --username=postgres --dbname=lottery >"$to/lottery.sql" 2>"$to/dump.log" || return 1
    psql=(docker exec "$primary" psql --username=postgres --dbname=lottery --no-psqlrc --tuples-only --no-align --command)
    # No schema yet if the central never opened the database: nothing stored.
    local has_bets
    has_bets=$("${psql[@]}" "SELECT to_regclass('lottery.bets') IS NOT NULL") || return 1
    if [[ $has_bets == t ]]; then
        local storage image network
        storage=$(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$server" | sed -n 's/^STORAGE=//p')
        image=$(docker inspect --format '{{.Config.Image}}' "$server")
        network=$(docker inspect --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "$primary")
        STORAGE=$storage docker run --rm --network "${network%% *}" --env STORAGE \
            --cap-drop ALL --security-opt no-new-privileges:true \
            --entrypoint /lottery-export "$image" >"$to/bets.csv" 2>"$to/export.log" || return 1
        bets=$(wc -l <"$to/bets.csv")
        closed=$("${psql[@]}" "SELECT count(*) FROM lottery.closed_agencies") || return 1
    else
        : >"$to/bets.csv"
        bets=0
        closed=0
    fi
}

kept=0
for _ in $(seq 1 60); do
    if keep_once; then
        kept=1
        break
    fi
    sleep 2
done
[[ $kept -eq 1 ]] || {
    cat "$to/dump.log" "$to/export.log" >&2 2>/dev/null
    echo "keep-lottery: no node of the formation took writes long enough to dump the lottery and export bets.csv: the deployment is left as it is" >&2
    exit 1
}
rm -f "$to/dump.log" "$to/export.log"
if [[ ${#started[@]} -gt 0 ]]; then
    docker stop "${started[@]}" >/dev/null
fi
echo "keep-lottery: the ended lottery ($bets bets in PostgreSQL, $closed agencies closed) is kept in $to/ (bets.csv by lottery-export; lottery.sql, pg_dump of the database)"
