# The lottery's make targets. `make demo` runs the whole lottery on this
# machine; `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test

demo:
	./scripts/demo.sh

test:
	$(CARGO) build --release --workspace
	$(CARGO) test --release --workspace
