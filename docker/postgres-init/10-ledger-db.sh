#!/usr/bin/env bash
# First start of the postgres service only: the ledger gets its own database and role, apart from
# Airflow's metadata database. The password comes from LEDGER_DB_PASSWORD (.env).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v ledger_password="$LEDGER_DB_PASSWORD" <<'SQL'
CREATE ROLE closed_loop LOGIN PASSWORD :'ledger_password';
CREATE DATABASE closed_loop OWNER closed_loop;
SQL
