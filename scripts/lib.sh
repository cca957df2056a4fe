# Shared by scripts/run and scripts/test: a project venv with alertd installed.
# shellcheck shell=bash

ensure_venv() {
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv" >&2
    "$py" -m venv .venv
  fi
  local stamp=.venv/.alertd-installed
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing alertd and its dev tools into .venv" >&2
    .venv/bin/pip install --quiet --upgrade pip >&2
    .venv/bin/pip install --quiet -e '.[dev]' >&2
    echo "$want" > "$stamp"
  fi
}

# Prints a PostgreSQL URL for a database named $1 (created if needed): ALERTD_DATABASE_URL's
# server, else the local server on 127.0.0.1:5432, else a private cluster in .local/pg.
ensure_database() {
  local name="$1"
  local base="${ALERTD_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/$name}"
  base="${base%/*}/$name"
  ALERTD_DATABASE_URL="$base" .venv/bin/alertd localdb --dir .local/pg
}
