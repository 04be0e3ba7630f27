#!/usr/bin/env bash
# CPU per process during one S5 delivery, as docs/performance.md reports it:
#   bench/load/s5-cpu.sh [postgres|sqlite]
# seeds MAILS (50000) invitation mails with restdose-bench, delivers them with `restdose matcher`
# (8 in parallel) into smtp-sink, and over SECS (3) seconds of delivery prints the utime + stime
# per delivered mail of the matcher, every PostgreSQL process and smtp-sink (from /proc), and
# how busy the machine was. BIN: folder of release binaries (default target/release); ADMIN:
# PostgreSQL admin URL (default RESTDOSE_TEST_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN=${BIN:-$ROOT/target/release}; BACKEND=${1:-postgres}; MAILS=${MAILS:-50000}
ADMIN=${ADMIN:-${RESTDOSE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
W=$(mktemp -d); mkdir -p "$W/d"; chmod 700 "$W/d"
if [[ $BACKEND == postgres ]]; then
  DB=restdose_cpu_$$; psql -q "$ADMIN" -c "CREATE DATABASE $DB"
  URL="${ADMIN%/*}/$DB"
else URL="sqlite://$W/d/restdose.db"; fi
E="RESTDOSE_DATABASE_URL=$URL RESTDOSE_DATA_DIR=$W/d RUST_LOG=warn"
env $E "$BIN/restdose-bench" mail-seed --mails "$MAILS" >/dev/null 2>&1
/usr/sbin/smtp-sink -u nobody 127.0.0.1:18026 256 >/dev/null 2>&1 & SINK=$!
sleep 0.3
ticks() { # pid list -> sum utime+stime
  local t=0; for p in "$@"; do [[ -r /proc/$p/stat ]] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
pgpids() { pgrep -x postgres || pgrep postgres; }
depth() { if [[ $BACKEND == postgres ]]; then psql -Atq "$URL" -c "SELECT count(*) FROM outbox"; else python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from outbox').fetchone()[0])" "$W/d/restdose.db"; fi; }
total() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
idle() { awk '/^cpu / {print $5+$6}' /proc/stat; }
env $E RESTDOSE_SMTP_URL=smtp://127.0.0.1:18026 RESTDOSE_SMTP_MAX_CONNECTIONS=8 RESTDOSE_MAIL_PARALLEL=8 \
  RESTDOSE_METRICS_LISTEN=127.0.0.1:18091 RESTDOSE_WORKER_POLL_MS=50 "$BIN/restdose" matcher >"$W/m.log" 2>&1 & M=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18091/metrics >/dev/null && break; sleep 0.05; done
sleep 1
a_m=$(ticks $M); a_s=$(ticks $SINK $(pgrep -P $SINK || true)); a_p=$(ticks $(pgpids)); a_t=$(total); a_i=$(idle)
d0=$(depth)
sleep ${SECS:-8}
b_m=$(ticks $M); b_s=$(ticks $SINK $(pgrep -P $SINK || true)); b_p=$(ticks $(pgpids)); b_t=$(total); b_i=$(idle)
d1=$(depth)
kill $M $SINK; wait $M $SINK 2>/dev/null || true
n=$((d0 - d1))
awk -v n=$n -v m=$((b_m-a_m)) -v s=$((b_s-a_s)) -v p=$((b_p-a_p)) -v t=$((b_t-a_t)) -v i=$((b_i-a_i)) -v hz=$(getconf CLK_TCK) -v be=$BACKEND 'BEGIN {
  printf "%s: %d mails in the window; ms CPU per mail: matcher %.3f, postgres %.3f, smtp-sink %.3f; machine busy %.0f%%\n", be, n, m*1000/hz/n, p*1000/hz/n, s*1000/hz/n, (t-i)*100/t }'
[[ $BACKEND == postgres ]] && psql -q "$ADMIN" -c "DROP DATABASE $DB WITH (FORCE)"
rm -rf "$W"
