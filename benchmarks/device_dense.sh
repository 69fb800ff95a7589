#!/usr/bin/env bash
# One visit to a 16-core machine with an NVIDIA GPU (H200): dense backends cpu, threads, cuda.
# Writes its tables under $OUT (or ./dense-out when $OUT is unset). Run from the repository root.
set -u
out=${OUT:-dense-out}; mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# numba-cuda there still calls np.row_stack, which NumPy 2.x removed: alias it before anything.
mkdir -p "$out/site"; echo 'import numpy as np; np.row_stack = getattr(np, "row_stack", np.vstack)' \
  > "$out/site/sitecustomize.py"
export PYTHONPATH=$out/site:$PYTHONPATH
{ nproc; python3 --version; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader;
  python3 -c "import numba; from numba import cuda; print('numba', numba.__version__, 'gpu', cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"
# Sanity first (a hang must not eat the visit): the real-GPU digests of the small scenarios.
timeout 240 python3 -m pytest -q tests/test_backends.py -k "real_gpu or shipped" 2>&1 | tail -5 | tee "$out/gpu-tests.txt"
for s in heat epidemic; do  # the same digest on every backend (the "done when")
  for b in cpu threads cuda; do
    d=$(timeout 240 python3 -m runtime.cli run scenarios/$s.toml --backend $b --out "$out/run-$s-$b" \
        --set results.plots=false 2>&1 | grep "results digest" | cut -c17-32)
    echo "$s $b $d" | tee -a "$out/digests.txt"
  done
done
timeout 240 python3 benchmarks/dense.py --no-mpi --ticks 10 --json "$out/dense-1e7.json" 2>&1 | tee "$out/dense-1e7.txt"
timeout 200 python3 benchmarks/dense.py --no-mpi --cells 1e8 --ticks 5 --warmup 2 --backends cpu cuda \
  --json "$out/dense-1e8.json" 2>&1 | tee "$out/dense-1e8.txt"
# threads at 1 thread vs 16 (the 0.8 x 16 target for the epidemic)
NUMBA_NUM_THREADS=1 timeout 120 python3 benchmarks/dense.py --no-mpi --ticks 5 --backends threads \
  --json "$out/dense-1thread.json" 2>&1 | tail -12 | tee "$out/dense-1thread.txt"
rm -rf "$out"/run-*
