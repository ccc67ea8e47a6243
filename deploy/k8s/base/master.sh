#!/bin/sh
# The master pod's entry point: sh master.sh locust ARGS...
#
# 1. Runs the Locust master (its arguments), forwarding SIGTERM/SIGINT to it so that a stopped run still writes its
#    partial Measurement. Measurements and a report left on the volume by an earlier run are removed first: they
#    are never taken for this run's.
# 2. When the run wrote its Measurement, judges it with `parity compare` into DIR/report next to it (DIR: the folder
#    of --parity-out): the concurrent A/B run's new side against its old side (--old-out), else against the
#    replayed baseline (--baseline). The verdict is printed, so `kubectl logs job/parity-master` shows it.
# 3. Stays up PARITY_RESULTS_KEEP_S seconds (default 900) so that the results can be copied out of this very pod,
#    in one command (see ../README.md):
#      kubectl -n NAMESPACE exec job/parity-master -- tar -cf - -C / results | tar -xf -
#    SIGTERM ends the wait at once (kubectl delete job parity-master: the volume stays).
# Exits with the replay's exit code (0 recorded, 2 bad options, 3 recorded in part, 4 refused or aborted), whatever
# the verdict: the Job says whether the run was recorded, the log and the report say how it compares.
set -u

out="" old_out="" baseline="" previous=""
for arg in "$@"; do
  case "$previous" in
    --parity-out) out="$arg" ;;
    --old-out) old_out="$arg" ;;
    --baseline) baseline="$arg" ;;
  esac
  previous="$arg"
done
if [ -z "$out" ]; then
  echo "master.sh: the master's arguments have no --parity-out" >&2
  exit 2
fi
results="$(dirname "$out")"
rm -rf "$out" "$results/report"
if [ -n "$old_out" ]; then rm -f "$old_out"; fi

"$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
wait "$pid"
code=$?
while kill -0 "$pid" 2>/dev/null; do  # wait returned early for a trapped signal: wait for the replay itself
  wait "$pid"
  code=$?
done
trap - TERM INT

if [ -f "$out" ]; then
  against="$baseline"
  if [ -n "$old_out" ] && [ -f "$old_out" ]; then against="$old_out"; fi
  echo "parity: judging $out against $against (report in $results/report)"
  verdict=0
  parity compare "$against" "$out" --out "$results/report" || verdict=$?
  echo "parity: compare exit code $verdict (0 parity, 1 regression, 3 inconclusive, 2 bad input)"
else
  echo "parity: the replay wrote no Measurement (exit code $code)"
fi

keep="${PARITY_RESULTS_KEEP_S:-900}"
echo "parity: replay exit code $code; results in $results for ${keep} s:"
echo "  kubectl exec job/parity-master -- tar -cf - -C $(dirname "$results") $(basename "$results") | tar -xf -"
trap 'exit "$code"' TERM INT
sleep "$keep" &
wait $!
exit "$code"
