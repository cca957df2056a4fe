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

# Exits with one line per taken port, naming it and a free choice, before anything starts.
# Usage: check_ports HTTP_PORT SANDBOX_PORT_BASE (the sandbox uses the base and the next two).
check_ports() {
  .venv/bin/python - "$1" "$2" <<'PY'
import socket
import sys

def free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

def first_free(start: int, count: int, avoid: set[int]) -> int | str:
    for base in range(start, 65536 - count):
        span = set(range(base, base + count))
        if not span & avoid and all(free(p) for p in span):
            return base
    return "<port>"

try:
    http, base = int(sys.argv[1]), int(sys.argv[2])
except ValueError:
    sys.exit("scripts/run: ALERTD_HTTP_PORT and SANDBOX_PORT_BASE must be port numbers")
sandbox = {base: "sandbox APNs", base + 1: "sandbox FCM", base + 2: "sandbox inspection"}
problems = []
if not free(http):
    problems.append(f"port {http} (HTTP API) is taken; choose another: "
                    f"ALERTD_HTTP_PORT={first_free(http + 1, 1, set(sandbox))} scripts/run")
busy = [f"{port} ({what})" for port, what in sandbox.items() if not free(port)]
if busy:
    are = "port " + busy[0] + " is" if len(busy) == 1 else "ports " + ", ".join(busy) + " are"
    problems.append(f"{are} taken; the sandbox uses SANDBOX_PORT_BASE and the "
                    f"two ports after it; choose another base: "
                    f"SANDBOX_PORT_BASE={first_free(base + 3, 3, {http})} scripts/run")
for line in problems:
    print(f"scripts/run: {line}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

# The browser tests (tests/browser) drive Debian's Chromium; Playwright never downloads one.
# Installed with apt-get when missing and we are root; in CI (CI=true) a Chromium that cannot
# be had stops the run here, elsewhere the browser tests are skipped with the reason.
# A Japanese font (fonts-ipafont-gothic) comes along when missing, for legible screenshots.
ensure_chromium() {
  local want=()
  if [ -z "${ALERTD_TEST_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    want+=(chromium)
  fi
  if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=ja 2>/dev/null | head -n 1)" ]; then
    want+=(fonts-ipafont-gothic)
  fi
  [ "${#want[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${want[*]} (apt-get) for the browser tests" >&2
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}"; } >&2; then
      return 0
    fi
  fi
  if [ -n "${ALERTD_TEST_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
    return 0  # only the font is missing: screenshots show boxes for Japanese, tests still run
  fi
  if [ "${CI:-}" = true ]; then
    echo "scripts/test: chromium is missing and cannot be installed (need root and apt-get);" \
         "the browser tests (tests/browser) need it: apt-get install chromium" >&2
    exit 1
  fi
  echo "scripts/test: chromium is missing: the browser tests will be skipped" \
       "(apt-get install chromium)" >&2
}
