#!/usr/bin/env bash
# Writes a docker compose file for the lottery: the central and N agencies.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: ./generar-compose.sh FILE N

Writes the docker compose file FILE with the central (service and container
`server`) and N agencies (`client1` ... `clientN`) on one network.

  FILE  the compose file to write (overwritten if it exists)
  N     how many agencies, 0 or more (0: the central alone)

The central gets AGENCIES=N and keeps its bets and journal in an anonymous
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
EOF
}

if [[ $# -eq 1 && ( "$1" == -h || "$1" == --help ) ]]; then
    usage
    exit 0
fi
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

# Written whole to a temporary file first, so a failed run leaves no half file.
tmp=$(mktemp "${file}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
    cat <<EOF
# Written by ./generar-compose.sh $file $agencies: the central and $agencies agencies.
services:
  server:
    container_name: ${prefix}server
    image: ${server_image}
    environment:
      - AGENCIES=${agencies}
      - BETS_FILE=/.data/central/bets.csv
    volumes:
      - ./compose/server/config.ini:/config.ini:ro
      # Anonymous: the lottery's files belong to this deployment. A killed,
      # stopped, restarted or recreated central finds them again; \`down\`
      # ends the lottery and the next \`up\` starts a new one.
      - /.data/central
    networks:
      - lottery_net
EOF
    for ((i = 1; i <= agencies; i++)); do
        cat <<EOF

  client${i}:
    container_name: ${prefix}client${i}
    image: ${client_image}
    environment:
      - CLI_ID=${i}
    volumes:
      - ./compose/client/config.yaml:/config.yaml:ro
      - ./.data/agency-${i}.csv:/.data/agency-${i}.csv:ro
    networks:
      - lottery_net
    depends_on:
      - server
EOF
    done
    cat <<EOF

networks:
  lottery_net: {}
EOF
} >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$file"
trap - EXIT
echo "generar-compose.sh: wrote $file with the central and $agencies agencies"
