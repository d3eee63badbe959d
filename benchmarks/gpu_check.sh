#!/usr/bin/env bash
# The kernel checks a session with a GPU runs (docs/gpu.md): every op's correctness gate on the
# GPU, the benchmark table against eager and torch.compile, and a short kernel search with TPE
# and with the agent. Needs autorec installed (README: manual install) and a CUDA torch.
#
#   bash benchmarks/gpu_check.sh [OUT_FOLDER]        # default benchmarks/results/gpu
#
# Each step writes its own file and the script goes on after a failing step, so one bad op
# still leaves the rest of the figures; the exit code is the number of failed steps.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python}
AUTOREC=("$PY" -m autorec.cli)
failed=0
step() {  # step NAME COMMAND...: run, log to OUT/NAME.log, count failures
    local name=$1; shift
    echo "== $name: $*"
    local started=$SECONDS
    if "$@" >"$OUT/$name.log" 2>&1; then echo "   ok ($((SECONDS - started)) s)"
    else echo "   FAILED rc=$? ($((SECONDS - started)) s): $(tail -n 1 "$OUT/$name.log")"; failed=$((failed + 1)); fi
}

"$PY" -c "import torch, triton; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, triton.__version__, torch.cuda.get_device_name())" || exit 99

# 1. Every op's gate on the GPU (compiled kernels), suite shapes, fp32 and bf16, 5 inputs each.
for op in $("$PY" -c "from autorec.kernels.registry import OPS; print(' '.join(OPS))"); do
    step "gate_$op" "${AUTOREC[@]}" kernels check "$op" --device cuda --shapes suite --json
done
# The ops' own tests on compiled kernels (part A's GPU mode).
step ops_tests env AUTOREC_KERNEL_TEST_DEVICE=cuda "$PY" -m pytest tests/kernels/test_ops_triton.py -q -x
# The harness's GPU-only test (side stream) and the gate's tests.
step gate_tests "$PY" -m pytest tests/kernels/test_gate.py -q -x

# 2. The benchmark table: production shapes (fwd+bwd, eager, torch.compile, HBM fraction).
step bench_production "$PY" benchmarks/kernels.py --shapes production \
    --out "$OUT/kernels_production.json"
step bench_suite "$PY" benchmarks/kernels.py --shapes suite --no-compile \
    --out "$OUT/kernels_suite.json"

# 3. A short kernel search on one op: TPE over the template's knobs, then the agent.
step search_tpe "${AUTOREC[@]}" search --space triton_kernels --set op=fm_interaction \
    --set 'dtypes=[bfloat16]' --proposer tpe --budget 12 --gpus-per-trial 1 \
    --db "$OUT/kernel_search.db" --run-name fm-tpe --json
step search_agent "${AUTOREC[@]}" search --space triton_kernels --set op=fm_interaction \
    --set 'dtypes=[bfloat16]' --proposer agent --budget 6 --gpus-per-trial 1 \
    --db "$OUT/kernel_search.db" --run-name fm-agent --json
step search_list "${AUTOREC[@]}" archive list --db "$OUT/kernel_search.db" --run fm-tpe --top 5

echo "failed steps: $failed (logs and JSON in $OUT)"
exit "$failed"
