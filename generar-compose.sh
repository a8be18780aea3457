#!/usr/bin/env bash
# Writes a docker compose file for the lottery: the central and N agencies.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: ./generar-compose.sh FILE N [--tls] [--postgres]

Writes the docker compose file FILE with the central (service and container
`server`) and N agencies (`client1` ... `clientN`) on one network. Every
container runs as a user other than root (the images' USER), without any
capability (cap_drop: ALL) and without gaining privileges
(no-new-privileges).

  FILE   the compose file to write (overwritten if it exists)
  N      how many agencies, 0 or more (0: the central alone)
  --tls  mutual TLS: the central serves only TLS and each agency presents
         its own certificate. The certificates are made under .data/tls/
         (beside FILE) if they are not all there, by the lottery-certs of
         the central's image (build it first: make docker-image). Each
         container mounts the CA certificate and only its own key: the
         central server.pem/server.key, agency i agency-i.pem/agency-i.key.
         .data/tls/ is made mode 0700, so only its owner reaches the files
         on the host; the keys the containers mount are 0644 in it, for the
         containers' own user to read them (ca.key stays 0600).
  --postgres  the bets in PostgreSQL, on a pg_auto_failover formation,
         and two centrals: three more services of the image POSTGRES_IMAGE
         that `make postgres-image` builds out of Debian's packages, the
         monitor `monitor` and the nodes `node1` and `node2` (the first
         primary, the second its synchronous standby; the monitor promotes
         the standby when the primary stops answering), and a second
         central, `server-2`, the same as `server` (containers of the
         same names). Both centrals get
         STORAGE=postgres://lottery:PASSWORD@node1:5432,node2:5432/lottery
         ?target_session_attrs=read-write (whichever node takes writes)
         and start once both nodes answer (their healthchecks); each
         agency gets CLI_SERVER_ADDRESS=server:12345,server-2:12345 and
         moves to the other central when one fails. Each PostgreSQL
         service keeps its cluster in an anonymous volume, as the central
         keeps its files: `down` ends the lottery (`make
         docker-compose-down` first dumps the database to
         .data/lotteries/). No port is published, and the formation is on
         a network of its own with the centrals only (`lottery_db`,
         internal): no agency reaches it. The password is in no compose
         file: it is kept in .data/postgres/ beside FILE (mode 0600), in
         postgres.env (POSTGRES_PASSWORD=, for the formation) and
         central.env (STORAGE=, for the centrals), which the compose file
         names as env_file.

The central gets AGENCIES=N and METRICS_PORT=9100 (/metrics, /status and
a page at /, on the compose network only: no port is published), and a
healthcheck that runs `/lottery-server --probe` (GET /status on that port);
the agencies start once it is healthy. It keeps its bets and journal in an anonymous
volume at /.data/central: they live as long as the deployment (kill,
stop, restart and `up` again recover them; `down` ends the lottery, and
`make docker-compose-down` first copies them to .data/lotteries/). Agency i
gets CLI_ID=i and .data/agency-i.csv. The configuration is mounted from
compose/server/config.ini and compose/client/config.yaml. Compose resolves
these relative paths from FILE's directory, so write FILE at the
repository root (or beside a compose/ and .data/ of its own).

Environment:
  SERVER_IMAGE      the central's image (default server:latest)
  CLIENT_IMAGE      the agencies' image (default client:latest)
  CONTAINER_PREFIX  put before every container name (default: none), so
                    that several compose projects can run side by side
  POSTGRES_IMAGE    with --postgres, the formation's image
                    (default lottery-postgres:latest)
  POSTGRES_PASSWORD with --postgres, the password of the database users
                    `lottery`, `autoctl_node` and
                    `pgautofailover_replicator` (letters, digits and
                    . _ ~ - only). Without it, the one already kept in
                    .data/postgres/postgres.env, else a new random one
EOF
}

die() {
    echo "generar-compose.sh: $*" >&2
    exit 1
}

# The certificate files a TLS deployment of N agencies mounts.
tls_files() {
    echo ca.pem server.pem server.key
    for ((i = 1; i <= $1; i++)); do
        echo "agency-$i.pem" "agency-$i.key"
    done
}

# Makes DIR (.data/tls/ beside the compose file) hold a CA, the central's
# certificate for the name `server` and one certificate per agency, with
# lottery-certs from the central's image: the images are FROM scratch and
# the host may have no build of it. A set that lacks some of the files (for
# fewer agencies, say) is moved aside, not overwritten, and a new one made.
make_certificates() {
    local dir=$1 n=$2 image=$3 missing=() f
    for f in $(tls_files "$n"); do
        [[ -f "$dir/$f" ]] || missing+=("$f")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        share_keys "$dir"
        echo "generar-compose.sh: using the certificates in $dir"
        return
    fi
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        die "$dir lacks ${missing[*]}; the certificates are made by /lottery-certs of the central's image $image, which is not there: build it (make docker-image SERVER_IMAGE=$image), or make them yourself: cargo run --release --bin lottery-certs -- --agencies $n --out $dir --server-name server --server-name localhost --server-name 127.0.0.1"
    fi
    if [[ -d "$dir" ]] && [[ -n "$(ls -A "$dir")" ]]; then
        local old
        old="$dir-$(date -u +%Y-%m-%dT%H-%M-%SZ)"
        mv "$dir" "$old"
        echo "generar-compose.sh: $dir lacked ${missing[*]}; moved it to $old"
    fi
    mkdir -p "$dir"
    # As the calling user, so that the files are the user's (share_keys
    # then opens the mounted keys to the containers' user).
    docker run --rm --user "$(id -u):$(id -g)" --network none \
        --cap-drop ALL --security-opt no-new-privileges:true \
        --volume "$(cd "$dir" && pwd):/out" --entrypoint /lottery-certs "$image" \
        --agencies "$n" --out /out \
        --server-name server --server-name localhost --server-name 127.0.0.1 >/dev/null ||
        die "lottery-certs in $image failed to write $dir"
    share_keys "$dir"
    echo "generar-compose.sh: made the certificates of a new CA, the central and $n agencies in $dir"
}

# The containers run as their images' user, not as the owner of DIR: each
# mounts its own key alone, read-only, and must be able to read it. So the
# keys they mount are 0644 inside DIR made 0700, which only its owner
# enters on the host. The CA's key, mounted nowhere, stays 0600.
share_keys() {
    local dir=$1 key
    chmod 700 "$dir" || die "cannot make $dir mode 0700: is it yours?"
    for key in "$dir"/server.key "$dir"/agency-*.key; do
        [[ -f $key ]] || continue
        chmod 644 "$key" || die "cannot make $key readable by the containers: is it yours?"
    done
}

# Prints the password of the deployment's database users: POSTGRES_PASSWORD
# if set, else the one kept in FILE (a POSTGRES_PASSWORD= line) by an
# earlier run, whose clusters may still be up, else a new random one (48
# hex digits, 192 bits).
postgres_password() {
    local kept=$1 password
    if [[ -n ${POSTGRES_PASSWORD:-} ]]; then
        password=$POSTGRES_PASSWORD
    elif [[ -f $kept ]]; then
        password=$(sed -n 's/^POSTGRES_PASSWORD=//p' "$kept")
        [[ -n $password ]] || die "$kept has no POSTGRES_PASSWORD= line: delete it for a new password"
    else
        password=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
        [[ ${#password} -eq 48 ]] || die "could not read 24 random bytes from /dev/urandom"
    fi
    echo "$password"
}

# Writes LINE as the only line of FILE, mode 0600 from its creation on, in
# place of what was there.
write_secret() {
    local file=$1 line=$2 tmp
    tmp=$(umask 077 && mktemp "$file.XXXXXX")
    printf '%s\n' "$line" >"$tmp"
    mv "$tmp" "$file"
}

if [[ $# -eq 1 && ( "$1" == -h || "$1" == --help ) ]]; then
    usage
    exit 0
fi
tls=0
postgres=0
args=()
for arg in "$@"; do
    if [[ "$arg" == --tls ]]; then
        tls=1
    elif [[ "$arg" == --postgres ]]; then
        postgres=1
    else
        args+=("$arg")
    fi
done
set -- "${args[@]+"${args[@]}"}"
if [[ $# -ne 2 || -z "$1" ]]; then
    usage >&2
    exit 2
fi
file=$1
if [[ ! "$2" =~ ^[0-9]{1,6}$ ]]; then
    echo "generar-compose.sh: N must be a whole number (0 or more), got '$2'" >&2
    usage >&2
    exit 2
fi
agencies=$((10#$2))
server_image=${SERVER_IMAGE:-server:latest}
client_image=${CLIENT_IMAGE:-client:latest}
prefix=${CONTAINER_PREFIX:-}
postgres_flag=""
postgres_note=""
if [[ $postgres -eq 1 ]]; then
    postgres_image=${POSTGRES_IMAGE:-lottery-postgres:latest}
    secrets=$(dirname "$file")/.data/postgres
    postgres_password=$(postgres_password "$secrets/postgres.env")
    if [[ ! "$postgres_password" =~ ^[A-Za-z0-9._~-]+$ ]]; then
        echo "generar-compose.sh: POSTGRES_PASSWORD may hold only letters, digits and . _ ~ - (it goes unquoted into SQL, a connection URL and an env_file)" >&2
        exit 2
    fi
    postgres_flag=" --postgres"
    postgres_note=", the bets on a pg_auto_failover formation (a monitor, a PostgreSQL primary and its synchronous standby) and a second central"
fi
tls_flag=""
tls_note=""
if [[ $tls -eq 1 ]]; then
    tls_flag=" --tls"
    tls_note=", over mutual TLS (certificates in .data/tls/)"
    make_certificates "$(dirname "$file")/.data/tls" "$agencies" "$server_image"
fi
if [[ $postgres -eq 1 ]]; then
    mkdir -p "$secrets" && chmod 700 "$secrets"
    write_secret "$secrets/postgres.env" "POSTGRES_PASSWORD=$postgres_password"
    # Whichever node takes writes (target_session_attrs=read-write): node1
    # first, node2 after a failover.
    write_secret "$secrets/central.env" "STORAGE=postgres://lottery:$postgres_password@node1:5432,node2:5432/lottery?target_session_attrs=read-write"
fi

# What every service gets: no capability, and no way to gain privileges
# (a setuid file, say); the images' USER is not root.
confined() {
    cat <<EOF
    cap_drop:
      - ALL
    security_opt:
      - no-new-privileges:true
EOF
}

# One service of the pg_auto_failover formation (--postgres): NAME, its
# command, and the service it waits for, if any: each node registers with
# the monitor, and node1 is made the primary before node2 copies it.
formation_service() {
    local name=$1 command=$2 after=$3
    cat <<EOF

  ${name}:
    container_name: ${prefix}${name}
    image: ${postgres_image}
    command: ${command}
    # POSTGRES_PASSWORD, kept out of this file (mode 0600).
    env_file:
      - ./.data/postgres/postgres.env
    volumes:
      # Anonymous, like the central's: the cluster lives as long as the
      # deployment.
      - /var/lib/postgresql
    healthcheck:
      test: ["CMD", "pg_isready", "--quiet", "--host=127.0.0.1", "--port=5432"]
      interval: 1s
      timeout: 5s
      retries: 300
    networks:
      - lottery_db
    # See the central's.
    dns_opt:
      - timeout:1
      - attempts:1
EOF
    confined
    if [[ -n $after ]]; then
        cat <<EOF
    depends_on:
      ${after}:
        condition: service_healthy
EOF
    fi
}

# Written whole to a temporary file first, so a failed run leaves no half file.
tmp=$(mktemp "${file}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
    cat <<EOF
# Written by ./generar-compose.sh $file $agencies${tls_flag}${postgres_flag}: the central and $agencies agencies${tls_note}${postgres_note}.
services:
  server:
    container_name: ${prefix}server
    image: ${server_image}
    environment:
      - AGENCIES=${agencies}
      - BETS_FILE=/.data/central/bets.csv
      - METRICS_PORT=9100
EOF
    if [[ $tls -eq 1 ]]; then
        cat <<EOF
      - TLS_CERT=/tls/server.pem
      - TLS_KEY=/tls/server.key
      - TLS_CLIENT_CA=/tls/ca.pem
EOF
    fi
    if [[ $postgres -eq 1 ]]; then
        cat <<EOF
    # STORAGE, the connection string with the password (kept out of this
    # file, mode 0600).
    env_file:
      - ./.data/postgres/central.env
EOF
    fi
    cat <<EOF
    volumes:
      - ./compose/server/config.ini:/config.ini:ro
      # Anonymous: the lottery's files belong to this deployment. A killed,
      # stopped, restarted or recreated central finds them again; \`down\`
      # ends the lottery and the next \`up\` starts a new one.
      - /.data/central
EOF
    if [[ $tls -eq 1 ]]; then
        cat <<EOF
      # The CA's certificate and the central's own key only.
      - ./.data/tls/ca.pem:/tls/ca.pem:ro
      - ./.data/tls/server.pem:/tls/server.pem:ro
      - ./.data/tls/server.key:/tls/server.key:ro
EOF
    fi
    cat <<EOF
    # The image has no shell: the central's own binary asks it for
    # GET /status (METRICS_PORT); healthy once the loop answers.
    healthcheck:
      test: ["CMD", "/lottery-server", "--probe"]
      interval: 1s
      timeout: 5s
      retries: 300
    networks:
      - lottery_net
EOF
    if [[ $postgres -eq 1 ]]; then
        cat <<EOF
      # The database's own network, which no agency is on.
      - lottery_db
EOF
    fi
    confined
    if [[ $postgres -eq 1 ]]; then
        cat <<EOF
    # A central that finds no node taking writes exits 1 (after \`up\`
    # again, say, while the formation settles who is primary): docker
    # starts it again until one does.
    restart: on-failure
    # A name of a container that is down takes docker's DNS the
    # resolver's whole timeout to deny, and a lookup blocks whoever makes
    # it: the monitor's health checks, a central's reconnect. One second,
    # once, keeps a dead node from holding a failover up.
    dns_opt:
      - timeout:1
      - attempts:1
    # It needs a node that takes writes; both answering, the primary has
    # its standby.
    depends_on:
      node1:
        condition: service_healthy
      node2:
        condition: service_healthy
EOF
        formation_service monitor '["monitor"]' ""
        formation_service node1 '["node", "node1"]' monitor
        formation_service node2 '["node", "node2"]' node1
    fi
    for ((i = 1; i <= agencies; i++)); do
        cat <<EOF

  client${i}:
    container_name: ${prefix}client${i}
    image: ${client_image}
    environment:
      - CLI_ID=${i}
EOF
        if [[ $tls -eq 1 ]]; then
            cat <<EOF
      - CLI_TLS_CA=/tls/ca.pem
      - CLI_TLS_CERT=/tls/agency-${i}.pem
      - CLI_TLS_KEY=/tls/agency-${i}.key
EOF
        fi
        if [[ $postgres -eq 1 ]]; then
            cat <<EOF
      # Both centrals, in the order tried: on failures the agency moves on.
      - CLI_SERVER_ADDRESS=server:12345,server-2:12345
EOF
        fi
        cat <<EOF
    volumes:
      - ./compose/client/config.yaml:/config.yaml:ro
      - ./.data/agency-${i}.csv:/.data/agency-${i}.csv:ro
EOF
        if [[ $tls -eq 1 ]]; then
            cat <<EOF
      # The CA's certificate and this agency's own key only.
      - ./.data/tls/ca.pem:/tls/ca.pem:ro
      - ./.data/tls/agency-${i}.pem:/tls/agency-${i}.pem:ro
      - ./.data/tls/agency-${i}.key:/tls/agency-${i}.key:ro
EOF
        fi
        cat <<EOF
    networks:
      - lottery_net
EOF
        confined
        cat <<EOF
    depends_on:
      server:
        condition: service_healthy
EOF
    done
    cat <<EOF

networks:
  lottery_net: {}
EOF
    if [[ $postgres -eq 1 ]]; then
        cat <<EOF
  # The centrals and the formation only; internal: no way out of it.
  lottery_db:
    internal: true
EOF
    fi
} >"$tmp"
if [[ $postgres -eq 1 ]]; then
    # The second central: the first's block again, under the name
    # server-2, so that the two never differ but in their names.
    awk -v prefix="$prefix" '
        /^  server:$/ { copying = 1 }
        copying && /^$/ {
            print
            for (i = 1; i <= n; i++) print block[i]
            print
            copying = 0
            next
        }
        copying {
            line = $0
            if (line == "  server:") line = "  server-2:"
            if (line == "    container_name: " prefix "server") line = line "-2"
            block[++n] = line
        }
        { print }
    ' "$tmp" >"$tmp.2"
    mv "$tmp.2" "$tmp"
fi
chmod 644 "$tmp"
mv "$tmp" "$file"
trap - EXIT
echo "generar-compose.sh: wrote $file with the central and $agencies agencies${tls_note}${postgres_note}"
