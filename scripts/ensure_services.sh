#!/usr/bin/env bash
# Make sure the services the tests talk to are up: start them where they are
# installed but stopped, otherwise say in one line what is missing.
set -uo pipefail

pg_host=127.0.0.1 pg_port=5432

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

wait_for() {  # wait_for CHECK SECONDS
  local i
  for ((i = 0; i < $2 * 5; i++)); do "$1" && return 0; sleep 0.2; done
  return 1
}

if ! command -v pg_isready >/dev/null; then
  echo "PostgreSQL client tools are missing: install postgresql (Debian: apt-get install postgresql)." >&2
  exit 1
fi
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is stopped: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    wait_for pg_up 30 || { echo "PostgreSQL did not come up on $pg_host:$pg_port." >&2; exit 1; }
  else
    echo "PostgreSQL is not reachable on $pg_host:$pg_port and is not installed here: install it or start it." >&2
    exit 1
  fi
fi
# The tests use the "test" database (TEST_DATABASE_URL); create it if this server lacks it.
if ! psql -h "$pg_host" -p "$pg_port" -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
  createdb -h "$pg_host" -p "$pg_port" -U postgres test || { echo "cannot create the PostgreSQL database 'test'." >&2; exit 1; }
fi

if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "Redis is stopped: starting it"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    wait_for redis_up 15 || { echo "Redis did not come up on 127.0.0.1:6379." >&2; exit 1; }
  else
    echo "Redis is not reachable on 127.0.0.1:6379 and is not installed here: install redis-server or start it." >&2
    exit 1
  fi
fi

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "could not install chromium with apt-get." >&2; exit 1; }
  else
    echo "Chromium is missing for the browser tests: install it (Debian: apt-get install chromium)." >&2
    exit 1
  fi
fi
# Dovecot: the tests start their own unprivileged IMAP server (tests/dovecot.py) for the
# bounce mailbox reader; only the binary is needed, Debian's service stays stopped.
if ! command -v dovecot >/dev/null && [ ! -x /usr/sbin/dovecot ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's dovecot-imapd for the bounce mailbox tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null) \
      || { echo "could not install dovecot-imapd with apt-get." >&2; exit 1; }
  else
    echo "Dovecot is missing for the bounce mailbox tests: install it (Debian: apt-get install dovecot-imapd)." >&2
    exit 1
  fi
fi
echo "services: PostgreSQL, Redis, Chromium and Dovecot are ready"
