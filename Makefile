# One command each; scripts/bootstrap.sh makes .venv on first use.
.PHONY: install demo dev test lint format typecheck bench

install:
	bash -c 'source scripts/bootstrap.sh'
demo:
	bash scripts/demo.sh
dev: install
	.venv/bin/deep-research dev
test:
	bash scripts/test.sh
lint: install
	.venv/bin/ruff check .
format: install
	.venv/bin/ruff format .
typecheck: install
	.venv/bin/mypy && .venv/bin/mypy bench/run_bench.py bench/bare.py
bench: install
	.venv/bin/python bench/run_bench.py
