#!/bin/bash
# Wall time of the tiny preset's whole DAG (the Snakemake command of tests/test_workflow_dag.py,
# --cores 2), for this checkout and for an older one, back to back in one run.
#   git worktree add /tmp/fesr-base 237b859
#   bash benchmarks/bench_tiny_dag.sh /tmp/fesr-base
# Each checkout runs with its own Snakefile, config and tiny preset, its code on PYTHONPATH, in a
# fresh temporary directory; the venv is this checkout's.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
base=${1:?usage: bench_tiny_dag.sh BASE_CHECKOUT}
[ -f "$base/Snakefile" ] || { echo "no Snakefile in '$base'; expected a checkout" >&2; exit 2; }
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for root in "$here" "$base"; do
  work=$(mktemp -d)
  start=$(date +%s.%N)
  PYTHONPATH="$root/src" "$here/.venv/bin/snakemake" -s "$root/Snakefile" -d "$work" --cores 2 \
    --configfile "$root/config.yaml" "$root/workflow/presets/tiny.yaml" > "$work.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  jobs=$(grep -c "^Finished jobid" "$work.log")
  printf '%s: rc %s, %s jobs, wall %.1f s, load %s (log %s.log)\n' "$root" "$rc" "$jobs" \
    "$(echo "$end - $start" | bc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$work"
  rm -rf "$work"
done
