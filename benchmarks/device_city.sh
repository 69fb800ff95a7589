#!/usr/bin/env bash
# One visit to a 16-core machine: City medium, large and huge (system Open MPI).
# Writes its tables under $OUT (or ./city-out when $OUT is unset). About 8 minutes.
set -u
out=${OUT:-city-out}; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nproc; python3 --version; mpiexec --version | head -1; lscpu | grep -E "Model name|^CPU\(s\)"; } | tee "$out/machine.txt"
# A short sanity run first (it also compiles the weather kernel): a hang must not eat the visit.
timeout 60 python3 benchmarks/city.py --scales tiny --ranks 1 2 --ticks 60 2>&1 | tail -4 || exit 1
timeout 60 python3 benchmarks/city_generate.py --repeats 1 2>&1 | tee "$out/generate.txt"
timeout 120 python3 benchmarks/city.py --scales small --ranks 1 4 16 --ticks 360 \
    --json "$out/small.json" 2>&1 | tee "$out/small.txt"
timeout 120 python3 benchmarks/city.py --scales medium --ranks 16 --ticks 60 \
    --json "$out/medium.json" 2>&1 | tee "$out/medium.txt"
timeout 120 python3 benchmarks/city.py --scales large --ranks 16 --ticks 24 \
    --json "$out/large.json" 2>&1 | tee "$out/large.txt"
timeout 150 python3 benchmarks/city.py --scales huge --ranks 16 --ticks 12 \
    --json "$out/huge.json" 2>&1 | tee "$out/huge.txt"
