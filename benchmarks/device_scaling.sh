#!/usr/bin/env bash
# One visit to a many-core machine: PHOLD scaling over 1..16 ranks (system Open MPI).
# Writes its tables under $OUT (or ./scaling-out when $OUT is unset).
set -u
out=${OUT:-scaling-out}; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nproc; python3 --version; mpiexec --version | head -1; lscpu | grep -E "Model name|^CPU\(s\)"; } | tee "$out/machine.txt"
# A short sanity run first: a hang here must not eat the visit.
timeout 30 python3 benchmarks/scaling.py --quick 2>&1 | tail -3 || exit 1
timeout 150 python3 benchmarks/scaling.py --ranks 1 2 4 8 16 --lps 100000 --ticks 20 2>&1 | tee "$out/scaling-1e5.txt"
timeout 90 python3 benchmarks/scaling.py --ranks 16 --lps 1000000 --ticks 8 2>&1 | tee "$out/scaling-1e6.txt"
