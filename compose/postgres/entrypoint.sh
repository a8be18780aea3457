#!/bin/sh
# The entrypoint of the lottery's PostgreSQL image (/entrypoint): one
# member of the compose deployment's pg_auto_failover formation, run as
# `postgres` (the image's USER; pg_autoctl and PostgreSQL refuse root).
# Debian's dash is the shell; `sleep`, `rm`, `mkdir`, `sync` and `cat` come
# from coreutils.
#
#   /entrypoint monitor       the formation's monitor (service `monitor`):
#                             it watches the nodes and promotes the
#                             secondary when the primary stops answering
#   /entrypoint node NAME     a PostgreSQL node named and reached as NAME
#                             (`node1`, `node2`): the first to register is
#                             the primary, made with the lottery's role and
#                             database; the next copies it and becomes its
#                             synchronous standby
#
# Each keeps everything under the volume /var/lib/postgresql: the cluster
# in data/, pg_autoctl's configuration and state (its XDG_CONFIG_HOME and
# XDG_DATA_HOME), and the file `ready`, which says the first start
# finished. A first start cut short runs `pg_autoctl create` again, which
# takes up where the cut one stopped; a later start only runs the service
# (`docker kill` then `up -d`, `stop` then `start`, `restart`). The pid file
# of the service is kept in /tmp/pg_autoctl, removed at every start: one
# left by a killed container would say the service still runs.
#
# The formation's own connections (the nodes to the monitor as
# `autoctl_node`, a standby to its primary as `pgautofailover_replicator`)
# and the centrals' (as `lottery`) all need POSTGRES_PASSWORD
# (scram-sha-256, pg_hba.conf). pg_autoctl, pg_basebackup and the WAL
# receiver find it in ~/.pgpass, written at every start (mode 0600), never
# on a command line.
#
# Environment:
#   POSTGRES_PASSWORD  the password of `lottery`, `autoctl_node` and
#                      `pgautofailover_replicator` (letters, digits and
#                      . _ ~ - only, so it needs no quoting in SQL nor in a
#                      connection URL)
#   MONITOR_HOST       the nodes' monitor (default monitor)
set -eu

bin=/usr/lib/postgresql/15/bin
volume=/var/lib/postgresql
PGDATA=$volume/data
ready=$volume/ready
HOME=$volume
XDG_CONFIG_HOME=$volume/config
XDG_DATA_HOME=$volume/share
XDG_RUNTIME_DIR=/tmp/pg_autoctl
PGPASSFILE=$volume/.pgpass
export PGDATA HOME XDG_CONFIG_HOME XDG_DATA_HOME XDG_RUNTIME_DIR PGPASSFILE

say() {
    echo "postgres-entrypoint: $*" >&2
}

die() {
    say "$*"
    exit 1
}

role=${1:-}
name=${2:-}
case $role in
monitor) name=monitor ;;
node)
    case $name in
    '' | *[!a-z0-9-]*) die "usage: /entrypoint node NAME (letters, digits, -; got '${name}')" ;;
    esac
    ;;
*) die "usage: /entrypoint monitor | node NAME (got '${role}')" ;;
esac

password=${POSTGRES_PASSWORD:-}
case $password in
'') die "POSTGRES_PASSWORD is not set" ;;
*[!A-Za-z0-9._~-]*) die "POSTGRES_PASSWORD may hold only letters, digits and . _ ~ -" ;;
esac

rm -rf "$XDG_RUNTIME_DIR"
mkdir -p "$XDG_RUNTIME_DIR"
(
    umask 077
    cat >"$PGPASSFILE" <<EOF
*:*:*:autoctl_node:$password
*:*:*:pgautofailover_replicator:$password
EOF
)

# Runs SQL on this server, started alone on its local socket only (no
# node, central or monitor sees it meanwhile), then stops it again.
local_sql() {
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait --silent \
        --options="-c listen_addresses=" start
    "$bin/psql" --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --username=postgres --dbname=postgres
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait --silent --mode=fast stop
}

# The settings of the image (/etc/postgresql/NAME.conf) after pg_autoctl's
# own in postgresql.conf: the last setting wins.
include_settings() {
    line="include '/etc/postgresql/$1.conf'"
    case $(cat "$PGDATA/postgresql.conf") in
    *"$line"*) ;;
    *) echo "$line" >>"$PGDATA/postgresql.conf" ;;
    esac
}

make_monitor() {
    pg_autoctl create monitor --pgdata "$PGDATA" --pgport 5432 \
        --hostname monitor --skip-pg-hba --no-ssl
    include_settings monitor
    local_sql <<EOF
ALTER ROLE autoctl_node PASSWORD '$password';
EOF
}

make_node() {
    monitor=${MONITOR_HOST:-monitor}
    waited=0
    until "$bin/pg_isready" --quiet --host="$monitor" --port=5432 --username=autoctl_node --dbname=pg_auto_failover; do
        if [ "$waited" -eq 0 ]; then
            say "waiting for the monitor $monitor:5432"
        fi
        waited=$((waited + 1))
        sleep 1
    done
    pg_autoctl create postgres --pgdata "$PGDATA" --pgport 5432 --listen '*' \
        --name "$name" --hostname "$name" --dbname lottery \
        --monitor "postgres://autoctl_node@$monitor:5432/pg_auto_failover" \
        --skip-pg-hba --no-ssl
    # A primary cut off from the monitor and its standby stops taking
    # writes after this many seconds (the monitor's timeouts are longer).
    pg_autoctl config set --pgdata "$PGDATA" timeout.network_partition_timeout 2 >/dev/null
    if [ -f "$PGDATA/standby.signal" ]; then
        # A copy of the primary: its roles, database and settings came with it.
        return
    fi
    include_settings node
    # The formation's first node: the lottery's role and database, and a
    # password for the replication role that pg_autoctl made without one.
    local_sql <<EOF
SELECT 'CREATE ROLE lottery LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lottery')
\gexec
ALTER ROLE lottery PASSWORD '$password';
ALTER DATABASE lottery OWNER TO lottery;
ALTER ROLE pgautofailover_replicator PASSWORD '$password';
EOF
}

if [ ! -f "$ready" ]; then
    say "first start: making the $role $name"
    "make_$role"
    : >"$ready"
    # On disk before the service runs: a `ready` lost in a crash would
    # only run `create` again, which finds the node made.
    sync
    say "the $role $name is made"
fi
exec pg_autoctl run --pgdata "$PGDATA"
