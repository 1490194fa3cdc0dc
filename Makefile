# The two commands of the README. Each sets up what it needs first and is safe to re-run.
.PHONY: setup test demo
setup:
	bash scripts/setup.sh

test: setup
	.venv/bin/python -m pytest -q

demo: setup
	bash scripts/demo.sh
