#!/bin/sh
# The entrypoint of the lottery's PostgreSQL image (/entrypoint): one server
# of the compose deployment's primary/standby pair, run as `postgres` (the
# image's USER; the server refuses root). Debian's dash is the shell, with
# the server binaries; `sleep`, `rm` and `sync` come from coreutils. The
# standby's password for streaming is in the primary_conninfo that -R
# writes.
#
#   /entrypoint primary   a new cluster on first start (initdb, the roles
#                         `lottery` and `replicator`, the database `lottery`),
#                         then the server, which waits for the standby
#                         named `standby` at every COMMIT
#   /entrypoint standby   on first start waits for the primary and copies it
#                         (pg_basebackup -R), then the server as its
#                         synchronous standby, named `standby`
#
# The cluster lives in $PGDATA under the volume /var/lib/postgresql; the
# file `ready` beside it says the first start finished. A start cut before
# that (killed during initdb or the copy) throws the half cluster away and
# begins again, so no half-made cluster is ever served.
#
# Environment:
#   POSTGRES_PASSWORD  the password of `lottery` and `replicator` (letters,
#                      digits and . _ ~ - only, so it needs no quoting in
#                      SQL nor in a connection URL)
#   PRIMARY_HOST       the standby's primary (default postgres-primary)
set -eu

bin=/usr/lib/postgresql/15/bin
volume=/var/lib/postgresql
PGDATA=$volume/data
export PGDATA
ready=$volume/ready
conf=/etc/postgresql/postgresql.conf

say() {
    echo "postgres-entrypoint: $*" >&2
}

die() {
    say "$*"
    exit 1
}

role=${1:-}
case $role in
primary | standby) ;;
*) die "usage: /entrypoint primary|standby (got '${role}')" ;;
esac

password=${POSTGRES_PASSWORD:-}
case $password in
'') die "POSTGRES_PASSWORD is not set" ;;
*[!A-Za-z0-9._~-]*) die "POSTGRES_PASSWORD may hold only letters, digits and . _ ~ -" ;;
esac

# A new cluster with the lottery's roles, served only on the local socket
# while it is made, so that nobody (the standby's wait included) sees it
# before the roles exist.
make_primary() {
    "$bin/initdb" --pgdata="$PGDATA" --username=postgres --encoding=UTF8 \
        --locale=C --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait --silent \
        --options="-c config_file=$conf -c listen_addresses= -c synchronous_standby_names=" start
    "$bin/psql" --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --username=postgres --dbname=postgres <<EOF
CREATE ROLE lottery LOGIN PASSWORD '$password';
CREATE ROLE replicator REPLICATION LOGIN PASSWORD '$password';
CREATE DATABASE lottery OWNER lottery;
EOF
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait --silent --mode=fast stop
}

# A copy of the primary, streamed with its WAL, set up (-R) to follow it.
make_standby() {
    primary=${PRIMARY_HOST:-postgres-primary}
    waited=0
    # As `lottery`, whom pg_hba.conf lets in from here: the primary then
    # asks for the password, which pg_isready counts as up without a FATAL
    # in the primary's log.
    until "$bin/pg_isready" --quiet --host="$primary" --port=5432 --username=lottery --dbname=lottery; do
        if [ "$waited" -eq 0 ]; then
            say "waiting for the primary $primary:5432"
        fi
        waited=$((waited + 1))
        sleep 1
    done
    PGPASSWORD=$password "$bin/pg_basebackup" --pgdata="$PGDATA" \
        --host="$primary" --port=5432 --username=replicator \
        --wal-method=stream --checkpoint=fast --write-recovery-conf --no-password
}

if [ ! -f "$ready" ]; then
    rm -rf "$PGDATA"
    say "first start: making the $role"
    "make_$role"
    : >"$ready"
    # On disk before the server serves anything: a `ready` lost in a crash
    # would have the next start throw away a cluster holding bets.
    sync
    say "the $role is made"
fi
exec "$bin/postgres" -c config_file="$conf" -c cluster_name="$role"
