#!/usr/bin/env bash
# bench/gpu_check.sh: the whole GPU check in one command on the GPU machine
# (bench/README.md): build with nvcc, the cross-backend tests, a
# compute-sanitizer pass, the quickstart on the GPU, both bench tables and
# the comparison with the public anchors. Each stage is time-boxed and the
# whole stays inside GPU_CHECK_DEADLINE seconds (default 560: one device
# call is at most 600), so one hang costs its own stage only.
#
# usage: bash bench/gpu_check.sh [STAGE...]
#   stages: info deps build test bench compare quickstart memcheck
#   (default all, in that order; `build` is implied by the later ones and
#   is quick when the build is already there)
# Output: $OUT (the device tool's folder; results/gpu_check without it):
#   summary.md      the stage table and every table (paste from it)
#   gpu_check.log   everything every stage printed
#   bench.db        the bench rows (training steps and kernels)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${OUT:-$ROOT/results/gpu_check}
WORK=${GPU_CHECK_WORK:-/tmp/sb_gpu_check}
DEADLINE=${GPU_CHECK_DEADLINE:-560}
mkdir -p "$OUTDIR" "$WORK"
SUMMARY=$OUTDIR/summary.md
LOG=$OUTDIR/gpu_check.log
STARTED=$(date +%s)
: >"$LOG"
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(info deps build test bench compare quickstart memcheck)
wants() { local s; for s in "${STAGES[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
for s in "${STAGES[@]}"; do
    case $s in info|deps|build|test|bench|compare|quickstart|memcheck) ;;
    *) echo "gpu_check: unknown stage '$s'; allowed: info deps build test bench compare quickstart memcheck" >&2; exit 2 ;;
    esac
done
# the later stages need the binaries and the libraries they link
if wants test || wants bench || wants compare || wants quickstart || wants memcheck; then
    wants deps || STAGES=(deps "${STAGES[@]}")
    wants build || STAGES=(deps build "${STAGES[@]:1}")
fi

{
    echo "# GPU check $(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
    echo "| stage | exit | seconds | limit | what |"
    echo "|---|---:|---:|---:|---|"
} >"$SUMMARY"
SECTIONS=$WORK/sections.md
: >"$SECTIONS"

# stage NAME LIMIT WHAT COMMAND...: runs COMMAND with its output appended to
# the log (and echoed), under timeout: min(LIMIT, the time left); skipped
# when under 15 s are left. Returns the command's exit code.
stage() {
    local name=$1 limit=$2 what=$3
    shift 3
    local left=$((DEADLINE - ($(date +%s) - STARTED)))
    if [ "$left" -lt 15 ]; then
        echo "| $name | skipped | 0 | $limit | $what: the deadline (${DEADLINE} s) has passed; rerun: bash bench/gpu_check.sh $name |" >>"$SUMMARY"
        return 124
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "===== $name: $what (limit ${limit} s) =====" | tee -a "$LOG"
    local t0 rc
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    local secs=$(($(date +%s) - t0))
    local note=""
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && note=" (timed out)"
    echo "| $name | $rc$note | $secs | $limit | $what |" >>"$SUMMARY"
    echo "===== $name: exit $rc after ${secs} s =====" | tee -a "$LOG"
    return "$rc"
}

# section TITLE FILE: a titled copy of FILE for the summary's second part.
section() {
    { echo; echo "## $1"; echo; if [ -s "$2" ]; then cat "$2"; else echo "(nothing: see gpu_check.log)"; fi; } >>"$SECTIONS"
}

export OMP_WAIT_POLICY=passive PYTHONUNBUFFERED=1
SB=$ROOT/bin/statebench

if wants info; then
    stage info 30 "GPU, driver, nvcc, python, torch" bash -c '
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || nvidia-smi
        nvcc --version | tail -2; gcc --version | head -1; python3 --version
        python3 -c "import torch, triton; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"triton\", triton.__version__, torch.cuda.get_device_name(0))"
        nproc; free -g | head -2'
    grep -A1 "^name, driver" "$LOG" | tail -1 | sed 's/^/GPU: /' >>"$WORK/info.txt"
    sed -n '/===== info:/,/===== info: exit/p' "$LOG" | grep -v "=====" >"$WORK/info.md"
    section "GPU machine" "$WORK/info.md"
fi

# deps: statebench's C libraries from bench/debs (bench/fetch_offline.sh)
# when the image lacks them, unpacked under $WORK/deps (never over /), and
# the anchors' wheels from bench/wheels into $WORK/site.
DEPS=$WORK/deps
use_deps() {
    local lib=$DEPS/usr/lib/x86_64-linux-gnu
    export CPATH=$DEPS/usr/include:$DEPS/usr/include/x86_64-linux-gnu/openblas-openmp${CPATH:+:$CPATH}
    export LIBRARY_PATH=$lib:$lib/openblas-openmp${LIBRARY_PATH:+:$LIBRARY_PATH}
    SB_LD_PATH=$lib:$lib/openblas-openmp
    export PATH=$DEPS/bin:$PATH
}
if wants deps; then
    deps_stage() {
        local have=1
        [ "${GPU_CHECK_FORCE_DEBS:-0}" = 1 ] && have=0   # to try the carried packages anywhere
        pkg-config --exists yaml-0.1 sqlite3 libxxhash 2>/dev/null || have=0
        [ -e /usr/include/criterion/criterion.h ] || have=0
        ls /usr/include/cblas.h /usr/include/*/cblas.h /usr/include/*/*/cblas.h >/dev/null 2>&1 || have=0
        if [ "$have" = 1 ]; then
            echo "deps: the image has statebench's libraries"
        else
            ls bench/debs/*.deb >/dev/null 2>&1 || { echo "deps: missing libraries and no bench/debs (run bench/fetch_offline.sh here and carry bench/debs)"; return 1; }
            mkdir -p "$DEPS/bin"
            for f in bench/debs/*.deb; do dpkg-deb -x "$f" "$DEPS" || return 1; done
            # the Makefile asks pkg-config for the libraries' flags; the
            # headers and libraries are found through CPATH / LIBRARY_PATH
            cat >"$DEPS/bin/pkg-config" <<'EOF'
#!/bin/sh
case " $* " in
*" --libs "*) echo "-lyaml -lsqlite3 -lxxhash" ;;
*" --cflags "*) echo "" ;;
esac
exit 0
EOF
            chmod +x "$DEPS/bin/pkg-config"
            touch "$DEPS/.used"
            echo "deps: unpacked $(ls bench/debs/*.deb | wc -l) packages into $DEPS"
        fi
        rm -rf "$WORK/site"
        if ls bench/wheels/*.whl >/dev/null 2>&1; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" bench/wheels/*.whl &&
                echo "deps: installed $(ls bench/wheels/*.whl | xargs -n1 basename | tr '\n' ' ')into $WORK/site"
        else
            echo "deps: no bench/wheels: the anchors from fla and FlashRNN will be skipped (run bench/fetch_offline.sh and carry bench/wheels)"
        fi
    }
    export DEPS WORK
    stage deps 60 "statebench's libraries (bench/debs) and the anchors' wheels (bench/wheels), offline" \
        bash -c "$(declare -f deps_stage); deps_stage"
fi
SB_LD_PATH=""
[ -e "$DEPS/.used" ] && use_deps
[ -d "$WORK/site" ] && export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
# our binaries find the unpacked libraries through SB_LDP and the wrapper
# $WORK/statebench (python, which needs none of them, keeps its own)
SB_LDP=$(echo "$SB_LD_PATH:${LD_LIBRARY_PATH:-}" | sed 's/^:*//; s/:*$//')
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$SB_LDP" "$SB" >"$WORK/statebench"
chmod +x "$WORK/statebench"

if wants build; then
    # for this GPU's architecture only (half the nvcc time of sm_80 + sm_90)
    CC_GPU=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    case $CC_GPU in
    [0-9][0-9]|[0-9][0-9][0-9]) GENCODE="-gencode arch=compute_$CC_GPU,code=sm_$CC_GPU" ;;
    *) CC_GPU=""; GENCODE="" ;;
    esac
    stage build 300 "make -j16 bin/statebench build/test_cuda (nvcc, ${CC_GPU:+sm_$CC_GPU}${CC_GPU:-sm_80 + sm_90})" \
        make -j16 bin/statebench build/test_cuda ${GENCODE:+CUDA_GENCODE="$GENCODE"} || true
fi

if wants test; then
    stage test 180 "make test-cuda: every CUDA op, mixer and run against the CPU" \
        env LD_LIBRARY_PATH="$SB_LDP" make test-cuda
    grep "Synthesis" "$LOG" | tail -1 | sed 's/^/test-cuda: /' >>"$WORK/info.txt"
fi

# the comparison's grid: the issue's small configs, cut to fit the minutes
KSHAPE=(--batch 8 --n 1024 --heads 8 --head-dim 64 --d-state 16)
MIXERS=lstm,deltanet,gla,gated_deltanet,mamba,attention
D=${GPU_CHECK_D:-64,256}; N=${GPU_CHECK_N:-64,512}; L=${GPU_CHECK_LAYERS:-1,2}
if wants bench; then
    stage bench-kernels 60 "statebench bench --device cuda --kernels (B 8, T 1024, H 8, D 64; mamba N 16)" \
        "$WORK/statebench" bench --device cuda --kernels "${KSHAPE[@]}" --steps 10 --db "$OUTDIR/bench.db"
    sed -n '/===== bench-kernels:/,/===== bench-kernels: exit/p' "$LOG" | grep -v "=====" >"$WORK/kernels.md"
    section "statebench bench --device cuda --kernels" "$WORK/kernels.md"
    # where the chunked scans start to beat the recurrent ones at the
    # synthetic tasks' head size (d 128, 4 heads): sets AUTO's threshold
    # (cuda_scan_delta_use_chunked, cuda_scan_delta_vec_use_chunked; T >= 64 unmeasured)
    stage bench-forms 40 "statebench bench --device cuda --kernels: scan forms at B 32, H 4, D 32, T 16..1024" \
        "$WORK/statebench" bench --device cuda --kernels --ops deltanet,gated_deltanet,gla --batch 32 --heads 4 \
        --head-dim 32 --n 16,32,64,128,256,1024 --steps 10 --db "$OUTDIR/bench.db"
    sed -n '/===== bench-forms:/,/===== bench-forms: exit/p' "$LOG" | grep -v "=====" >"$WORK/forms.md"
    section "Scan forms: recurrent against chunked (AUTO's threshold)" "$WORK/forms.md"
    stage bench-steps 120 "statebench bench --device cuda: training steps, d $D, n $N, layers $L, batch 32" \
        "$WORK/statebench" bench --device cuda --mixers "$MIXERS" --d "$D" --n "$N" --layers "$L" --batch 32 --steps 10 \
        --db "$OUTDIR/bench.db"
    sed -n '/===== bench-steps:/,/===== bench-steps: exit/p' "$LOG" | grep -v "=====" >"$WORK/steps.md"
    section "statebench bench --device cuda (training steps)" "$WORK/steps.md"
fi

if wants compare; then
    ours=()
    [ -s "$WORK/kernels.md" ] && ours+=(--ours-kernels-md "$WORK/kernels.md")
    [ -s "$WORK/steps.md" ] && ours+=(--ours-steps-md "$WORK/steps.md")
    export TORCH_EXTENSIONS_DIR=$WORK/torch_extensions TRITON_CACHE_DIR=$WORK/triton_cache
    stage compare 200 "bench/compare_gpu.py: the anchors on the same shapes, ratios against the targets" \
        python3 bench/compare_gpu.py --statebench "$WORK/statebench" "${ours[@]}" --d "$D" --n "$N" --layers "$L" \
        --budget 100 --flashrnn-backends cuda_fused --out "$WORK/compare.md"
    section "Comparison with the public anchors (bench/compare_gpu.py)" "$WORK/compare.md"
fi

if wants quickstart; then
    rm -f "$WORK/quickstart.db"*
    stage quickstart 120 "statebench run configs/quickstart.yaml --device cuda --jobs 4, then report" bash -c "
        export LD_LIBRARY_PATH='$SB_LDP'
        '$SB' run configs/quickstart.yaml --device cuda --jobs 4 --db '$WORK/quickstart.db' &&
        '$SB' report '$WORK/quickstart.db' > '$WORK/quickstart.md' && cat '$WORK/quickstart.md'"
    section "Quickstart on the GPU (configs/quickstart.yaml; its header has the CPU's figures)" "$WORK/quickstart.md"
fi

if wants memcheck; then
    stage memcheck 90 "compute-sanitizer memcheck: build/test_cuda cuda_kernels/*, cuda_ops/* and the chunked scans" bash -c "
        export LD_LIBRARY_PATH='$SB_LDP'
        for f in 'cuda_kernels/*' 'cuda_ops/*' 'cuda_scan_chunk/*' 'cuda_scan_vec_chunk/*'; do
            compute-sanitizer --tool memcheck --target-processes all --error-exitcode 1 --print-limit 20 \
                build/test_cuda --filter \"\$f\" --jobs 1 || exit 1
        done"
fi

{
    echo
    [ -s "$WORK/info.txt" ] && sed 's/^/- /' "$WORK/info.txt"
    echo "- total: $(($(date +%s) - STARTED)) s of a ${DEADLINE} s deadline"
    cat "$SECTIONS"
} >>"$SUMMARY"
echo "gpu_check: wrote $SUMMARY and $LOG$([ -e "$OUTDIR/bench.db" ] && echo " and $OUTDIR/bench.db")"
# a stage that failed is in the table; the exit code says whether any did
! grep -qE '^\| [a-z-]+ \| ([1-9]|skipped)' "$SUMMARY"
