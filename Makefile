# One command each; scripts/bootstrap.sh makes .venv on first use, from the locks.
.PHONY: install check test lint format format-check typecheck lock demo dev bench

install:
	bash -c 'source scripts/bootstrap.sh'
# Everything CI runs: format check, lint, type check (tests and bench too), then the tests.
check:
	bash scripts/test.sh
test: install
	.venv/bin/pytest
lint: install
	.venv/bin/ruff check .
format: install
	.venv/bin/ruff format .
format-check: install
	.venv/bin/ruff format --check .
typecheck: install
	.venv/bin/mypy && .venv/bin/mypy bench/run_bench.py bench/bare.py bench/providers.py bench/store_floor.py bench/hops.py bench/step_cpu.py
# After changing a dependency in pyproject.toml: regenerate requirements/*.txt.
lock:
	bash scripts/lock.sh
demo:
	bash scripts/demo.sh
dev: install
	.venv/bin/deep-research dev
bench: install
	.venv/bin/python bench/run_bench.py
