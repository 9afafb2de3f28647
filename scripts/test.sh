#!/usr/bin/env bash
# What `make test` runs: services, linters, type checker, then the tests on
# PostgreSQL and the database tests again on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
# Never let a developer's own settings leak into the tests.
unset DATABASE_URL REDIS_URL SECRET_KEY PORT SMTP_HOST SMTP_PORT BASE_URL

scripts/ensure_services.sh

echo "== ruff"
$BIN/ruff check .
$BIN/ruff format --check .
echo "== mypy"
$BIN/mypy
echo "== pytest on PostgreSQL ($TEST_DATABASE_URL)"
$BIN/pytest --cov --cov-report=term "$@"
echo "== pytest on SQLite (database tests again)"
TEST_DATABASE_URL=sqlite $BIN/pytest -m "not postgres_only and not browser" -p no:cacheprovider "$@"
