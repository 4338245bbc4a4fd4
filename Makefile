# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The headline experiment: status quo vs the IOM South-South programme.
run: $(STAMP)
	$(BIN)/migsd run --scenario status_quo --scenario iom_south_south \
		--out outputs/headline.nc --plot outputs/headline.png --overwrite --quiet
	$(BIN)/migsd report

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=15

clean:
	rm -rf $(VENV) outputs/headline.nc outputs/headline.png
