# The lottery's make targets. `make demo` runs the whole lottery on this
# machine; `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test

demo:
	./scripts/demo.sh

test:
	$(CARGO) build --release --workspace
	$(CARGO) test --release --workspace --no-fail-fast

# ---------------------------------------------------------------------------
# Docker compose: one central and N agencies (generar-compose.sh, compose/).
# The images are FROM scratch and hold only the statically linked binaries,
# because this engine cannot pull any base image.

.PHONY: build docker-image postgres-image docker-compose-up docker-compose-bets docker-compose-down docker-compose-logs

STATIC_TARGET := x86_64-unknown-linux-gnu
# Its own target directory, so the static build does not invalidate the
# normal one.
STATIC_DIR := target/static
COMPOSE_FILE ?= docker-compose-dev.yaml
AGENCIES ?= 5
SERVER_IMAGE ?= server:latest
CLIENT_IMAGE ?= client:latest
# TLS=1: a compose file made with `generar-compose.sh FILE N --tls` (mutual
# TLS, certificates in .data/tls/, made by the central's image).
TLS ?=
TLS_ON := $(filter 1 yes true,$(TLS))
# POSTGRES=1: a compose file made with `generar-compose.sh FILE N
# --postgres` (the bets on a pg_auto_failover formation, a monitor and two
# nodes of POSTGRES_IMAGE, which `docker-image` then builds too, and two
# centrals).
POSTGRES ?=
POSTGRES_ON := $(filter 1 yes true,$(POSTGRES))
POSTGRES_IMAGE ?= lottery-postgres:latest
# Seconds `docker-compose-down` gives each container to shut down gracefully.
STOP_TIMEOUT ?= 10
# `docker compose` (the plugin) where the machine has it, else docker-compose.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo 'docker compose'; else echo docker-compose; fi)

# The central, lottery-certs, lottery-export and the agency, statically linked (glibc's static resolver
# still reads /etc/hosts and DNS, which compose service names need). Debug
# info is stripped (symbols are kept) to keep the images small. The empty
# directory central-data becomes the central's /.data/central, owned by its
# user (compose/server/Dockerfile).
build:
	CARGO_PROFILE_RELEASE_STRIP=debuginfo RUSTFLAGS='-C target-feature=+crt-static' \
		$(CARGO) build --release --target $(STATIC_TARGET) --target-dir $(STATIC_DIR) \
		-p lottery --bin lottery-server --bin lottery-certs --bin lottery-export -p lottery-client --bin lottery-client
	mkdir -p $(STATIC_DIR)/central-data

docker-image: build $(if $(POSTGRES_ON),postgres-image)
	docker build -f compose/server/Dockerfile -t $(SERVER_IMAGE) .
	docker build -f compose/client/Dockerfile -t $(CLIENT_IMAGE) .

# PostgreSQL 15 and pg_auto_failover FROM scratch: Debian's server binaries,
# pg_autoctl and their libraries (apt-get install postgresql
# pg-auto-failover-cli postgresql-15-auto-failover first if they are
# missing) with the entrypoint and configuration of compose/postgres/. Same files, same tar: a rebuild is
# a cache hit.
postgres-image:
	./compose/postgres/make-image.sh '$(POSTGRES_IMAGE)'

# With TLS=1 the certificates come from the central's image, so it is built
# first (order-only: an existing compose file is not written again).
$(COMPOSE_FILE): | $(if $(TLS_ON),docker-image)
	SERVER_IMAGE='$(SERVER_IMAGE)' CLIENT_IMAGE='$(CLIENT_IMAGE)' $(if $(POSTGRES_ON),POSTGRES_IMAGE='$(POSTGRES_IMAGE)') \
		./generar-compose.sh $@ $(AGENCIES) $(if $(TLS_ON),--tls) $(if $(POSTGRES_ON),--postgres)

# A file written with --postgres names the PostgreSQL image (its
# monitor service's): built here unless docker-image (POSTGRES=1)
# has just built that one.
docker-compose-up: $(COMPOSE_FILE) docker-compose-bets docker-image
	@if [[ -n '$(TLS_ON)' ]] && ! grep -q -- '- TLS_CERT=' '$(COMPOSE_FILE)'; then \
		echo "docker-compose-up: TLS=1, but $(COMPOSE_FILE) is a plain deployment:" >&2; \
		echo "  ./generar-compose.sh $(COMPOSE_FILE) N --tls (or delete it, and make docker-compose-up TLS=1 writes one for $(AGENCIES))" >&2; \
		exit 1; \
	fi
	@if [[ -n '$(POSTGRES_ON)' ]] && ! grep -q '^  monitor:$$' '$(COMPOSE_FILE)'; then \
		echo "docker-compose-up: POSTGRES=1, but $(COMPOSE_FILE) keeps its bets in bets.csv:" >&2; \
		echo "  ./generar-compose.sh $(COMPOSE_FILE) N --postgres (or delete it, and make docker-compose-up POSTGRES=1 writes one for $(AGENCIES))" >&2; \
		exit 1; \
	fi
	@image=$$(sed -n '/^  monitor:$$/,/^$$/s/^    image: //p' '$(COMPOSE_FILE)'); \
	if [[ -n $$image && ( -z '$(POSTGRES_ON)' || $$image != '$(POSTGRES_IMAGE)' ) ]]; then \
		echo "docker-compose-up: $(COMPOSE_FILE) keeps its bets in PostgreSQL: make postgres-image POSTGRES_IMAGE=$$image"; \
		$(MAKE) --no-print-directory postgres-image POSTGRES_IMAGE="$$image"; \
	fi
	$(COMPOSE) -f $(COMPOSE_FILE) up -d

# A bets file missing on the host would be mounted as an empty directory
# that docker creates in its place, so they are checked before anything
# starts (and before the build, to fail fast).
docker-compose-bets: $(COMPOSE_FILE)
	@cd '$(dir $(COMPOSE_FILE))' && mkdir -p .data && \
	missing=$$(grep -o '\./\.data/agency-[0-9]*\.csv' '$(notdir $(COMPOSE_FILE))' | sort -u | \
		while read -r f; do [[ -f $$f ]] || echo "$$f"; done); \
	if [[ -n $$missing ]]; then \
		echo "docker-compose-up: these bets files are missing:" $$missing >&2; \
		echo "  unzip the course dataset into .data/ (unzip ../shared/data/dataset.zip -d .data)" >&2; \
		echo "  or generate some: cargo run --release -p lottery-bench --bin lottery-gen -- --agencies $(AGENCIES) --out .data" >&2; \
		exit 1; \
	fi; \
	missing=$$(grep -o '\./\.data/tls/[^:]*' '$(notdir $(COMPOSE_FILE))' | sort -u | \
		while read -r f; do [[ -f $$f ]] || echo "$$f"; done); \
	if [[ -n $$missing ]]; then \
		echo "docker-compose-up: these certificate files are missing:" $$missing >&2; \
		echo "  write the compose file again to make them: ./generar-compose.sh $(notdir $(COMPOSE_FILE)) N --tls" >&2; \
		exit 1; \
	fi; \
	missing=$$(grep -o '\./\.data/postgres/[a-z]*\.env' '$(notdir $(COMPOSE_FILE))' | sort -u | \
		while read -r f; do [[ -f $$f ]] || echo "$$f"; done); \
	if [[ -n $$missing ]]; then \
		echo "docker-compose-up: these PostgreSQL password files are missing:" $$missing >&2; \
		echo "  write the compose file again to make them: ./generar-compose.sh $(notdir $(COMPOSE_FILE)) N --postgres" >&2; \
		exit 1; \
	fi

# Between stop and down: how each container ended, the central's last words,
# and the lottery kept in .data/lotteries/ (its files live in an anonymous
# volume of the deployment, which `down -v` deletes with the containers).
docker-compose-down:
	$(COMPOSE) -f $(COMPOSE_FILE) stop -t $(STOP_TIMEOUT)
	@$(COMPOSE) -f $(COMPOSE_FILE) ps
	@$(COMPOSE) -f $(COMPOSE_FILE) logs --no-color --tail=1 server
	@./scripts/keep-lottery.sh '$(COMPOSE_FILE)' $(COMPOSE)
	$(COMPOSE) -f $(COMPOSE_FILE) down -v

docker-compose-logs:
	$(COMPOSE) -f $(COMPOSE_FILE) logs -f
