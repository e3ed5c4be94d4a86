# Developer shortcuts; CI runs .ci/run. See docs/testing.md.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: cassettes model-server model-server-stop

cassettes:  ## re-record tests/cassettes/ against the local model server (started if needed)
	$(PYTHON) scripts/record_cassettes.py

model-server:  ## start the local model server on 127.0.0.1:8765 and wait until it answers
	$(PYTHON) scripts/model_server.py start

model-server-stop:  ## stop the server started by `make model-server`
	$(PYTHON) scripts/model_server.py stop
