# Sourced by the scripts: the shell side of edge_testkit::missing (the rule
# of the developers' guide for a step whose outside tool is missing).
#
#   skip_or_fail <step> <reason>
#
# Under CI (CI=true or CI=1): prints the error and exits 1 (the step fails;
# .ci/run installs every required tool, so a missing one is a broken CI).
# Elsewhere: prints "notice: <step> skipped: <reason>", appends
# "<step>: <reason>" to $EDGE_SKIP_LOG when set (test-all.sh's summary lists
# it), and returns 0; the caller then skips the step.
skip_or_fail() {
  local ci="${CI:-}"
  if [ "${ci,,}" = true ] || [ "$ci" = 1 ]; then
    echo "error: $1: $2; under CI (CI=true) a missing tool is a failure, not a skip" >&2
    exit 1
  fi
  echo "notice: $1 skipped: $2"
  if [ -n "${EDGE_SKIP_LOG:-}" ]; then
    echo "$1: $2" >>"$EDGE_SKIP_LOG"
  fi
  return 0
}
