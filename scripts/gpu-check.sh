#!/usr/bin/env bash
# gpu-check.sh: checks the CUDA backend on a GPU machine that has no Swift
# toolchain and no network. This machine builds a self-contained pack; the GPU
# machine runs it against PyTorch and writes its results to $OUT.
#
#   scripts/gpu-check.sh pack [DIR] [--skip-build] [--no-compress] [--max-mib N]
#       On the build machine (DIR defaults to .gpu-pack; it is added to
#       .git/info/exclude when it is not ignored yet):
#       1. swift build -c release --static-swift-stdlib --build-path .build-static
#          for --product pilot and --product pilot-bench (--skip-build reuses the
#          last build), then strip both binaries;
#       2. puts the SwiftPM resource bundles (*.resources: PILOT_Tensors' Kernels/,
#          PILOT_Diffusion's tokenizer vocabulary, GRDB's) beside them in bin/:
#          on Linux Bundle.module looks beside the executable first, then at an
#          absolute build path that does not exist on the GPU machine;
#       3. copies every shared library ldd lists for the two binaries into lib/,
#          except glibc's own (libc, libm, libmvec, libdl, libpthread, librt,
#          libresolv, libutil, libanl, ld-linux), and says which glibc they need;
#       4. packs bin/ and lib/ into DIR/pilot-gpu.tar.xz (the static binaries
#          share most of their bytes and libopenblas is 35 MB: uncompressed they
#          do not fit; --no-compress writes DIR/bin and DIR/lib instead), writes
#          DIR/MANIFEST.txt, and smoke-tests the unpacked copy (ldd, pilot info);
#       5. fetches the Python wheels the GPU machine lacks into DIR/wheels with
#          scripts/gpu-wheels.sh (a warning when it is missing or fails);
#       6. checks that the Python scripts and kernel sources the remote run
#          needs (and the repository modules they import) travel with the
#          working tree, then prints the size of DIR and of everything that
#          travels (tracked + untracked-not-ignored files + DIR), and fails when
#          it exceeds --max-mib (default 60; the device machine takes 64 MiB).
#
#   scripts/gpu-check.sh --dry-run [DIR] [pack options]
#       pack, then the device command to run; exit 0 when the pack fits.
#
#   scripts/gpu-check.sh remote [DIR] [--rounds N] [--pilot-rounds N] [--skip-bench]
#                                     [--only parity,e2e,noise,unet,pilot] [--budget S]
#       On the GPU machine, from the repository root (no Swift, no network).
#       Writes log.txt, parity.json, e2e.json, bench.jsonl and table.md to
#       ${OUT:-/tmp/gpu-check-out}:
#       1. unpacks DIR/pilot-gpu.tar.xz into /tmp/pilot-gpu-pack (or uses
#          DIR/bin and DIR/lib); our binaries run with LD_LIBRARY_PATH=<pack>/lib
#          (set per command, so Python never loads the pack's older libstdc++);
#          exports PILOT_CUDA_LIBRARY_PATH (every nvidia/*/lib folder of the
#          Python's NVIDIA wheels), PILOT_KERNEL_DIR (this tree's
#          Sources/Tensors/CUDA/Kernels) and PILOT_KERNEL_CACHE=/tmp/pilot-kernels;
#       2. installs DIR/wheels/*.whl into /tmp/site (pip --no-index --no-deps
#          --target; unzipped when pip is missing) and exports PYTHONPATH=/tmp/site;
#       3. runs, each step under `timeout` and within a total --budget (default
#          470 s), a failing step reported and the next one run:
#            nvidia-smi -L; pilot info
#            pilot-bench gpu parity --json $OUT/parity.json          (120 s)
#            pilot-bench gpu e2e --json $OUT/e2e.json                (120 s)
#            python3 Tests/Reference/make_torch_noise_fixtures.py --out $OUT/torch_randn.json
#                                                                    (60 s; torch.randn on the GPU)
#            python3 Benchmarks/peers/gpu.py make-model /tmp/sd15    (180 s; kept if there)
#            --rounds R (default 3) of, alternately,                 (60 s each)
#              pilot-bench gpu unet --model /tmp/sd15 --precision fp16 --json
#              python3 Benchmarks/peers/gpu.py unet --model /tmp/sd15 --precision fp16 --json
#            pilot-bench gpu pilot ... and gpu.py pilot ..., once each (150 s each)
#          collecting the benchmarks' JSON records into bench.jsonl
#          (--skip-bench: parity, e2e and noise only; --only: the steps named);
#       4. prints a markdown table (per case: median seconds ours and PyTorch,
#          ours/PyTorch, peak device memory of both, the device) with the
#          parity/e2e verdicts and each step's outcome, and writes it to
#          table.md. Exit 0 when every step it ran passed.
#
#   scripts/gpu-check.sh --help
#
# The device command (the `run` tool; carry the pack, which is git-ignored):
#
#   command:   bash scripts/gpu-check.sh remote .gpu-pack
#   carry:     [".gpu-pack"]
#   timeout_s: 540
#
# Environment: PILOT_GPU_UNPACK (where remote unpacks, /tmp/pilot-gpu-pack),
# PILOT_GPU_MODEL (/tmp/sd15), PYTHON (python3), GPU_CHECK_T_INFO, _PARITY,
# _E2E, _NOISE, _MODEL, _UNET, _PILOT (per-step limits in seconds).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
PACK_NAME=pilot-gpu.tar.xz
BUILD_PATH=.build-static
STAGE=$BUILD_PATH/gpu-stage
PRODUCTS=(pilot pilot-bench)
# Files the remote run reads from the working tree; the Python modules they
# import from the repository are added to this list by find_python_imports.
REMOTE_FILES=(Benchmarks/peers/gpu.py Benchmarks/models/make_random_sd15.py
              Tests/Reference/pilot_reference.py Tests/Reference/make_torch_noise_fixtures.py
              Sources/Tensors/CUDA/Kernels/pilot_kernels.cu)
# glibc's own libraries: every Linux has them, and they must match its ld.so.
GLIBC_LIBS='^(linux-vdso|linux-gate|ld-linux[^ ]*|libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libanl)\.so'

# Per-step time limits (seconds) for remote, each overridable with
# GPU_CHECK_T_<NAME>; the total budget (--budget) caps them all.
T_INFO=${GPU_CHECK_T_INFO:-45} T_PARITY=${GPU_CHECK_T_PARITY:-120} T_E2E=${GPU_CHECK_T_E2E:-120}
T_MODEL=${GPU_CHECK_T_MODEL:-180} T_UNET=${GPU_CHECK_T_UNET:-60} T_PILOT=${GPU_CHECK_T_PILOT:-150}
T_NOISE=${GPU_CHECK_T_NOISE:-60}
MIN_STEP=15   # a step that would get less than this is skipped
RESERVE=15    # seconds kept back for the table

die() { echo "gpu-check: error: $*" >&2; exit 1; }
warn() { echo "gpu-check: warning: $*" >&2; }
note() { echo "gpu-check: $*"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

usage() {
    # The header comment above is the manual.
    sed -n '2,/^set -euo pipefail/{/^set -euo/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}"
}

# An absolute path for $1, relative to the caller's directory.
absolute() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$CALLER_DIR" "$1" ;; esac; }

# $1 relative to the repository root, or nothing when it lies outside.
repo_relative() {
    local p
    p=$(realpath -m "$1")
    case $p in "$ROOT"/*) printf '%s\n' "${p#"$ROOT"/}" ;; *) ;; esac
}

# =========================================================================== pack

# Makes sure git ignores DIR (when it lies in the repository), so that it
# travels only as a carried path and is never committed.
ignore_pack_dir() {
    local rel exclude
    rel=$(repo_relative "$PACK_DIR")
    if [[ -z $rel ]]; then
        warn "$PACK_DIR is outside the repository: the run tool cannot carry it"
        return
    fi
    if git -C "$ROOT" check-ignore -q "$rel"; then return 0; fi
    exclude=$(git -C "$ROOT" rev-parse --git-path info/exclude)
    [[ $exclude = /* ]] || exclude=$ROOT/$exclude
    mkdir -p "$(dirname "$exclude")"
    echo "/$rel/" >>"$exclude"
    note "added /$rel/ to $exclude"
}

# Step 1: the static release build, stripped, into $STAGE/bin.
build_binaries() {
    local product bin_path
    if ((SKIP_BUILD)); then
        note "--skip-build: using the last build in $BUILD_PATH"
    else
        for product in "${PRODUCTS[@]}"; do
            note "swift build -c release --static-swift-stdlib --build-path $BUILD_PATH --product $product"
            swift build -c release --static-swift-stdlib --build-path "$BUILD_PATH" --product "$product"
        done
    fi
    bin_path=$(swift build -c release --static-swift-stdlib --build-path "$BUILD_PATH" --show-bin-path)
    BIN_PATH=$bin_path
    rm -rf "$STAGE"
    mkdir -p "$STAGE/bin" "$STAGE/lib"
    for product in "${PRODUCTS[@]}"; do
        [[ -x $bin_path/$product ]] || die "$bin_path/$product was not built"
        strip -o "$STAGE/bin/$product" "$bin_path/$product"
        note "bin/$product: $(mib "$(stat -c %s "$bin_path/$product")") built, $(mib "$(stat -c %s "$STAGE/bin/$product")") stripped"
    done
}

# Step 2: the resource bundles, beside the binaries (where Bundle.module looks).
copy_resources() {
    local bundle found=0
    for bundle in "$BIN_PATH"/*.resources; do
        [[ -d $bundle ]] || continue
        cp -a "$bundle" "$STAGE/bin/"
        note "bin/$(basename "$bundle") ($(du -sh "$bundle" | cut -f1))"
        found=1
    done
    ((found)) || die "no *.resources bundle in $BIN_PATH"
    [[ -f $STAGE/bin/PILOT_Tensors.resources/Kernels/pilot_kernels.cu ]] ||
        die "PILOT_Tensors.resources/Kernels/pilot_kernels.cu missing from the build"
    [[ -f $STAGE/bin/PILOT_Diffusion.resources/Resources/bpe_simple_vocab_16e6.txt.gz ]] ||
        die "PILOT_Diffusion.resources/Resources/bpe_simple_vocab_16e6.txt.gz missing from the build"
}

# Step 3: the shared libraries the binaries need, glibc's own excepted.
copy_libraries() {
    local name path missing=() copied=0 bytes=0
    while read -r name path; do
        if [[ $path = "not" ]]; then missing+=("$name"); continue; fi
        [[ $name =~ $GLIBC_LIBS ]] && continue
        [[ -e $STAGE/lib/$name ]] && continue
        cp -L "$path" "$STAGE/lib/$name"
        copied=$((copied + 1))
        bytes=$((bytes + $(stat -c %s "$STAGE/lib/$name")))
        note "lib/$name  $(mib "$(stat -c %s "$STAGE/lib/$name")")  (from $(readlink -f "$path"))"
    done < <(ldd "${PRODUCTS[@]/#/$STAGE/bin/}" | awk '$2 == "=>" { print $1, $3 }' | sort -u)
    ((${#missing[@]} == 0)) || die "ldd cannot find: ${missing[*]}"
    note "$copied libraries, $(mib "$bytes")"
    GLIBC_NEED=$(glibc_needed)
    note "needs glibc >= ${GLIBC_NEED:-?} (this machine: $(ldd --version | awk 'NR == 1 { print $NF }'))"
}

# The highest GLIBC_x.y version the binaries and the other libraries need,
# and, when higher, that of the pack's libstdc++/libgcc_s (remote falls back
# to the system's copies of those two when they cannot load).
glibc_needed() {
    command -v objdump >/dev/null || return 0
    local f v core="" runtime=""
    for f in "$STAGE"/bin/pilot "$STAGE"/bin/pilot-bench "$STAGE"/lib/*; do
        v=$(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n 1)
        [[ -n $v ]] || continue
        case ${f##*/} in
            libstdc++.so.* | libgcc_s.so.*) runtime=$(printf '%s\n' "$runtime" "$v" | sort -V | tail -n 1) ;;
            *) core=$(printf '%s\n' "$core" "$v" | sort -V | tail -n 1) ;;
        esac
    done
    if [[ -n $runtime ]] && [[ $(printf '%s\n' "$core" "$runtime" | sort -V | tail -n 1) != "$core" ]]; then
        echo "$core (the pack's libstdc++/libgcc_s: $runtime, else the system's are used)"
    else
        echo "$core"
    fi
}

# Step 4: DIR/pilot-gpu.tar.xz (or DIR/bin, DIR/lib) and DIR/MANIFEST.txt.
write_pack() {
    local largest dict bundles
    if ((NO_COMPRESS)); then
        cp -a "$STAGE/bin" "$STAGE/lib" "$PACK_DIR/"
    else
        # The two binaries share the Swift runtime, Foundation and ICU's data:
        # a dictionary larger than one binary lets xz store those bytes once.
        largest=$(stat -c %s "$STAGE"/bin/pilot "$STAGE"/bin/pilot-bench | sort -n | tail -n 1)
        dict=$((largest / 1048576 + 9))
        ((dict < 64)) && dict=64
        note "xz (dictionary ${dict} MiB; about $((dict * 11 / 1024 + 1)) GiB of memory, a few minutes)"
        # The binaries first and side by side, so their shared bytes are close.
        bundles=("$STAGE"/bin/*.resources)
        tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -cf - \
            bin/pilot bin/pilot-bench "${bundles[@]#"$STAGE"/}" lib |
            xz -T1 --lzma2="preset=9,dict=${dict}MiB" -c >"$PACK_DIR/$PACK_NAME"
        note "$PACK_NAME: $(mib "$(stat -c %s "$PACK_DIR/$PACK_NAME")") (from $(mib "$(du -sb "$STAGE" | cut -f1)"))"
    fi
    {
        echo "pilot GPU pack, made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
        echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(
            git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo " (with uncommitted changes)")"
        echo "built:  $(date -u -r "$BIN_PATH/pilot-bench" +%Y-%m-%dT%H:%M:%SZ)$( ((SKIP_BUILD)) && echo " (--skip-build: the commit above is the tree's at packing time)")"
        echo "swift:  $(swift --version 2>&1 | head -n 1)"
        echo "glibc:  needs >= ${GLIBC_NEED:-?}"
        echo "files:"
        (cd "$STAGE" && find bin lib -type f -printf '%s\t%p\n' | sort -k2 |
            awk -F'\t' '{ printf "  %10d  %s\n", $1, $2 }')
        echo "sha256:"
        (cd "$STAGE" && sha256sum bin/pilot bin/pilot-bench bin/PILOT_Tensors.resources/Kernels/*.cu | sed 's/^/  /')
    } >"$PACK_DIR/MANIFEST.txt"
}

# Unpacks the pack into a scratch folder and runs the binaries there with a
# bare environment, so a missing library or resource shows up here first.
smoke_test() {
    local tmp missing out
    tmp=$(mktemp -d)
    SMOKE_DIR=$tmp   # removed on exit (cmd_pack's trap)
    if ((NO_COMPRESS)); then
        cp -a "$PACK_DIR/bin" "$PACK_DIR/lib" "$tmp/"
    else
        xz -dc "$PACK_DIR/$PACK_NAME" | tar -C "$tmp" -xf -
    fi
    missing=$(LD_LIBRARY_PATH=$tmp/lib ldd "$tmp"/bin/pilot "$tmp"/bin/pilot-bench | grep 'not found' || true)
    [[ -z $missing ]] || die "unpacked binaries miss libraries: $missing"
    if ! out=$(cd / && env -i PATH=/usr/bin:/bin HOME="$tmp" LD_LIBRARY_PATH="$tmp/lib" "$tmp/bin/pilot" info 2>&1); then
        die "the unpacked pilot info failed: $out"
    fi
    note "smoke test (unpacked, bare environment): pilot info"
    printf '    %s\n' "${out//$'\n'/$'\n'    }"
    [[ -f $tmp/bin/PILOT_Tensors.resources/Kernels/pilot_kernels.cu ]] || die "the unpacked pack lacks the kernel bundle"
    # Which of the loaded libraries come from the pack (all but glibc's)?
    if out=$(cd / && env -i LD_LIBRARY_PATH="$tmp/lib" LD_DEBUG=libs "$tmp/bin/pilot" --help 2>&1 >/dev/null); then
        grep -o 'calling init: [^ ]*' <<<"$out" | awk '{ print $3 }' | grep -v "^$tmp/" |
            grep -Ev '/(libc|libm|libmvec|libdl|libpthread|librt|libresolv|ld-linux[^/]*)\.so' |
            sed 's/^/gpu-check: warning: loaded from outside the pack: /' >&2 || true
    fi
}

# Step 5: the Python wheels the GPU machine lacks.
fetch_wheels() {
    if [[ ! -f $ROOT/scripts/gpu-wheels.sh ]]; then
        warn "scripts/gpu-wheels.sh is missing: no wheels in the pack (the PyTorch peer needs diffusers)"
        WHEELS_STATUS="missing (no scripts/gpu-wheels.sh)"
        return
    fi
    if bash "$ROOT/scripts/gpu-wheels.sh" "$PACK_DIR/wheels"; then
        WHEELS_STATUS="$(find "$PACK_DIR/wheels" -name '*.whl' | wc -l) wheels"
    else
        warn "scripts/gpu-wheels.sh failed: the pack has no (or not all) wheels"
        WHEELS_STATUS="FAILED (scripts/gpu-wheels.sh)"
    fi
}

# The repository Python modules that the given scripts import, transitively
# (a module counts when <name>.py sits in the folder of a script seen so far).
find_python_imports() {
    "$PYTHON" - "$@" <<'PY'
import ast, os, sys
todo = [p for p in sys.argv[1:] if p.endswith(".py")]
seen, dirs = set(), {os.path.dirname(p) for p in todo}
while todo:
    path = todo.pop()
    if path in seen or not os.path.isfile(path):
        continue
    seen.add(path)
    dirs.add(os.path.dirname(path))
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    for name in names:
        for d in sorted(dirs):
            candidate = os.path.join(d, name + ".py")
            if os.path.isfile(candidate) and candidate not in seen:
                todo.append(candidate)
for p in sorted(seen - set(sys.argv[1:])):
    print(p)
PY
}

# Step 6a: the files the remote run reads travel with the working tree
# (tracked, or untracked and not ignored).
check_remote_files() {
    local f files=() bad=0
    files=("${REMOTE_FILES[@]}")
    while IFS= read -r f; do files+=("$f"); done < <(cd "$ROOT" && find_python_imports "${REMOTE_FILES[@]}")
    for f in "${files[@]}"; do
        if [[ ! -f $ROOT/$f ]]; then
            warn "$f is missing"; bad=1
        elif [[ -z $(git -C "$ROOT" ls-files --cached --others --exclude-standard -- "$f") ]]; then
            warn "$f is git-ignored: it will not reach the GPU machine"; bad=1
        fi
    done
    ((bad == 0)) || die "files the remote run needs would not travel"
    note "remote files travel: ${files[*]}"
}

# Step 6b: the sizes of DIR and of everything that travels; fails over the limit.
check_size() {
    local tree pack total rel limit
    rel=$(repo_relative "$PACK_DIR")
    # Tracked and untracked-not-ignored files that exist (DIR excluded: it is carried).
    tree=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
        { if [[ -n $rel ]]; then grep -zv "^$rel/" || true; else cat; fi; } |
        xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }') || true
    pack=$(du -sb "$PACK_DIR" | cut -f1)
    total=$((tree + pack))
    limit=$((MAX_MIB * 1048576))
    echo
    echo "pack $PACK_DIR:"
    (cd "$PACK_DIR" && find . -maxdepth 2 -type f -printf '%s\t%P\n' | sort -k2 |
        while IFS=$'\t' read -r size name; do printf '  %-60s %s\n' "$name" "$(mib "$size")"; done)
    printf '  %-60s %s\n' "DIR total" "$(mib "$pack")"
    printf '  %-60s %s\n' "working tree (tracked + untracked, not ignored)" "$(mib "$tree")"
    printf '  %-60s %s (limit %d MiB)\n' "travels in all" "$(mib "$total")" "$MAX_MIB"
    echo "  wheels: ${WHEELS_STATUS:-?}; glibc needed on the GPU machine: >= ${GLIBC_NEED:-?}"
    if ((total > limit)); then
        die "$(mib "$total") travels: over the $MAX_MIB MiB limit"
    fi
}

cmd_pack() {
    cd "$ROOT"
    command -v swift >/dev/null || die "swift is not on the PATH"
    command -v strip >/dev/null || die "strip (binutils) is needed"
    ((NO_COMPRESS)) || command -v xz >/dev/null || die "xz is needed (or --no-compress)"
    SMOKE_DIR=""
    trap 'rm -rf "${SMOKE_DIR:-/nonexistent}"' EXIT
    mkdir -p "$PACK_DIR"
    ignore_pack_dir
    find "$PACK_DIR" -mindepth 1 -delete
    check_remote_files
    build_binaries
    copy_resources
    copy_libraries
    write_pack
    smoke_test
    fetch_wheels
    check_size
}

# ========================================================================= remote

# The outcome of each step, for the table: name, status, exit code, seconds, note.
record_step() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$STEPS"; }

# The time a step may take: its own limit, capped by what is left of the budget.
step_limit() {
    local want=$1 left=$((BUDGET - SECONDS - RESERVE))
    ((left < want)) && want=$left
    echo "$want"
}

# run_step NAME LIMIT CAPTURE COMMAND...: runs COMMAND under `timeout`, its
# output in the log (and its stdout also in CAPTURE when that is not empty).
# Returns the command's status; a failure is recorded, never fatal.
run_step() {
    local name=$1 limit=$2 capture=$3 start rc status note=""
    shift 3
    limit=$(step_limit "$limit")
    if ((limit < MIN_STEP)); then
        echo "=== $name: skipped (the ${BUDGET} s budget is spent)"
        record_step "$name" skipped - 0 "budget"
        return 1
    fi
    echo
    local shown="$*"
    ((${#shown} > 160)) && shown="${shown:0:160}…"
    echo "=== $name (limit ${limit} s, at ${SECONDS} s): ${shown//$'\n'/ }"
    start=$SECONDS
    set +e
    if [[ -n $capture ]]; then
        timeout -k 10 "$limit" "$@" </dev/null | tee "$capture"
        rc=${PIPESTATUS[0]}
    else
        timeout -k 10 "$limit" "$@" </dev/null
        rc=$?
    fi
    set -e
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout; note="killed after ${limit} s" ;;
        *) status=failed ;;
    esac
    echo "=== $name: $status (exit $rc, $((SECONDS - start)) s)"
    record_step "$name" "$status" "$rc" "$((SECONDS - start))" "$note"
    [[ $status = ok ]]
}

# Appends the JSON objects in a step's stdout (one line each, or pretty-printed)
# to bench.jsonl, tagged with the side, round and exit status.
collect_json() {
    local file=$1 side=$2 step=$3 round=$4
    [[ -s $file ]] || return 0
    "$PYTHON" - "$file" "$side" "$step" "$round" >>"$OUT/bench.jsonl" <<'PY' || warn "no JSON from $step"
import json, sys
path, side, step, round_ = sys.argv[1:5]
text, dec, i, n = open(path, encoding="utf-8", errors="replace").read(), json.JSONDecoder(), 0, 0
while (i := text.find("{", i)) >= 0:
    try:
        obj, end = dec.raw_decode(text, i)
    except ValueError:
        i += 1
        continue
    if isinstance(obj, dict):
        obj.update({"_side": side, "_step": step, "_round": int(round_)})
        print(json.dumps(obj, sort_keys=True))
        n += 1
    i = end
sys.exit(0 if n else 1)
PY
}

# Step 1: the pack's binaries and the CUDA/kernel environment.
remote_setup() {
    local unpack=${PILOT_GPU_UNPACK:-/tmp/pilot-gpu-pack} wheel_libs
    if [[ -f $PACK_DIR/$PACK_NAME ]]; then
        rm -rf "$unpack"
        mkdir -p "$unpack"
        if command -v xz >/dev/null; then
            xz -dc "$PACK_DIR/$PACK_NAME" | tar -C "$unpack" -xf -
        else
            "$PYTHON" -c 'import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    t.extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))' \
                "$PACK_DIR/$PACK_NAME" "$unpack"
        fi
        PACK_ROOT=$unpack
        note "unpacked $PACK_DIR/$PACK_NAME into $unpack"
    elif [[ -x $PACK_DIR/bin/pilot-bench ]]; then
        PACK_ROOT=$PACK_DIR
    else
        die "no pack in $PACK_DIR (make one with scripts/gpu-check.sh pack)"
    fi
    [[ -f $PACK_DIR/MANIFEST.txt ]] && sed -n '1,4p' "$PACK_DIR/MANIFEST.txt"
    echo "this machine: $(uname -sr), glibc $(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
    PILOT=$PACK_ROOT/bin/pilot
    BENCH=$PACK_ROOT/bin/pilot-bench
    OURS_LD=$PACK_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    for f in "$PILOT" "$BENCH" "$PACK_ROOT/bin/PILOT_Tensors.resources" "$PACK_ROOT/bin/PILOT_Diffusion.resources"; do
        [[ -e $f ]] || die "the pack lacks $f"
    done
    check_loader

    wheel_libs=$("$PYTHON" - <<'PY' || true
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
dirs = []
for base in list(getattr(nvidia, "__path__", [])):
    for d in sorted(glob.glob(os.path.join(base, "*", "lib"))):
        if os.path.isdir(d) and d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PY
)
    [[ -n $wheel_libs ]] || warn "no nvidia/*/lib folders found through $PYTHON"
    export PILOT_CUDA_LIBRARY_PATH=$wheel_libs${PILOT_CUDA_LIBRARY_PATH:+:$PILOT_CUDA_LIBRARY_PATH}
    export PILOT_KERNEL_DIR=$ROOT/Sources/Tensors/CUDA/Kernels
    export PILOT_KERNEL_CACHE=/tmp/pilot-kernels
    export PYTHONUNBUFFERED=1
    mkdir -p "$PILOT_KERNEL_CACHE"
    if ! cmp -s "$PILOT_KERNEL_DIR/pilot_kernels.cu" "$PACK_ROOT/bin/PILOT_Tensors.resources/Kernels/pilot_kernels.cu"; then
        warn "Sources/Tensors/CUDA/Kernels/pilot_kernels.cu differs from the pack's copy (PILOT_KERNEL_DIR, the tree's, wins)"
    fi
    echo "our binaries:             LD_LIBRARY_PATH=$OURS_LD"
    echo "PILOT_CUDA_LIBRARY_PATH=$PILOT_CUDA_LIBRARY_PATH"
    echo "PILOT_KERNEL_DIR=$PILOT_KERNEL_DIR PILOT_KERNEL_CACHE=$PILOT_KERNEL_CACHE"
}

# Our binaries must start with the pack's libraries. Its libstdc++ and
# libgcc_s need the build machine's glibc (2.36 from Debian 12): on an older
# one they are set aside and the system's copies (Python's, torch's) used.
check_loader() {
    local err rc=0
    err=$(env "LD_LIBRARY_PATH=$OURS_LD" "$PILOT" --help 2>&1 >/dev/null) || rc=$?
    ((rc == 0)) && return 0
    warn "pilot --help does not run with the pack's libraries (exit $rc): ${err%%$'\n'*}"
    mkdir -p "$PACK_ROOT/lib-unused"
    mv -f "$PACK_ROOT"/lib/libstdc++.so.* "$PACK_ROOT"/lib/libgcc_s.so.* "$PACK_ROOT/lib-unused/" 2>/dev/null || true
    if err=$(env "LD_LIBRARY_PATH=$OURS_LD" "$PILOT" --help 2>&1 >/dev/null); then
        note "using this machine's libstdc++ and libgcc_s instead of the pack's"
        return 0
    fi
    die "pilot does not start here (built on glibc 2.36; needs the glibc in MANIFEST.txt): ${err%%$'\n'*}"
}

# Step 2: the wheels the peer needs (diffusers), into /tmp/site.
remote_wheels() {
    local site=/tmp/site wheels=()
    shopt -s nullglob
    wheels=("$PACK_DIR"/wheels/*.whl)
    shopt -u nullglob
    if ((${#wheels[@]} == 0)); then
        warn "no wheels in $PACK_DIR/wheels: the peer uses what $PYTHON has"
        return
    fi
    rm -rf "$site"
    mkdir -p "$site"
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" "${wheels[@]}" || warn "pip could not install the wheels"
    else
        warn "no pip: unzipping the wheels (pure Python) into $site"
        for w in "${wheels[@]}"; do "$PYTHON" -m zipfile -e "$w" "$site"; done
    fi
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
    note "installed ${#wheels[@]} wheels into $site (PYTHONPATH)"
}

want() { [[ ,$ONLY, = *",$1,"* ]]; }

# Step 3: the checks and the benchmark.
remote_steps() {
    local model=${PILOT_GPU_MODEL:-/tmp/sd15} cap=$WORK/stdout r have_model=0
    if command -v nvidia-smi >/dev/null; then
        run_step nvidia-smi 30 "" nvidia-smi -L || true
    else
        warn "nvidia-smi is not on the PATH"
    fi
    run_step python-env 60 "" "$PYTHON" -c 'import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
try:
    import diffusers, transformers
    print("diffusers", diffusers.__version__, "| transformers", transformers.__version__)
except ImportError as e:
    print("peer import failed:", e)' || true
    run_step "pilot info" "$T_INFO" "" env "LD_LIBRARY_PATH=$OURS_LD" "$PILOT" info || true

    if want parity; then
        run_step parity "$T_PARITY" "" env "LD_LIBRARY_PATH=$OURS_LD" "$BENCH" gpu parity --json "$OUT/parity.json" || true
    fi
    if want e2e; then
        run_step e2e "$T_E2E" "" env "LD_LIBRARY_PATH=$OURS_LD" "$BENCH" gpu e2e --json "$OUT/e2e.json" || true
    fi
    if want noise; then
        # torch.randn on the CUDA device (and the CPU kernels again), for TorchNoiseTests'
        # torch-cuda entries: copy $OUT/torch_randn.json to Tests/Fixtures/noise/ afterwards.
        run_step noise "$T_NOISE" "" "$PYTHON" Tests/Reference/make_torch_noise_fixtures.py --out "$OUT/torch_randn.json" || true
    fi
    if ! want unet && ! want pilot; then return 0; fi

    if [[ -f $model/model_index.json ]]; then
        note "using the model already in $model"
        have_model=1
    else
        rm -rf "$model".*   # what a killed make-model left (it renames its folder into place)
        if run_step make-model "$T_MODEL" "" "$PYTHON" Benchmarks/peers/gpu.py make-model "$model"; then
            have_model=1
        fi
    fi
    if ((!have_model)); then
        warn "no model in $model: the benchmarks are skipped"
        want unet && record_step unet skipped - 0 "no model"
        want pilot && record_step pilot skipped - 0 "no model"
        return 0
    fi

    want unet && alternate unet "$ROUNDS" "$T_UNET"
    want pilot && alternate pilot "$PILOT_ROUNDS" "$T_PILOT"
    return 0
}

# CASE ROUNDS LIMIT: ours and the peer alternating for ROUNDS rounds of
# `gpu CASE` (fp16), each under LIMIT seconds, records into bench.jsonl.
alternate() {
    local case=$1 rounds=$2 limit=$3 r
    for ((r = 1; r <= rounds; r++)); do
        run_step "$case ours $r/$rounds" "$limit" "$cap" \
            env "LD_LIBRARY_PATH=$OURS_LD" "$BENCH" gpu "$case" --model "$model" --precision fp16 --json || true
        collect_json "$cap" ours "$case" "$r"
        run_step "$case pytorch $r/$rounds" "$limit" "$cap" \
            "$PYTHON" Benchmarks/peers/gpu.py "$case" --model "$model" --precision fp16 --json || true
        collect_json "$cap" pytorch "$case" "$r"
    done
}

# Step 4: the markdown table, from bench.jsonl, parity.json, e2e.json and the steps.
remote_table() {
    "$PYTHON" - "$OUT" "$STEPS" <<'PY' | tee "$OUT/table.md"
import json, os, statistics, sys
out, steps_path = sys.argv[1:3]
notes = []

def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as e:
        notes.append(f"{os.path.basename(path)} is not JSON ({e})")
        return None

def first(d, keys):
    for k in keys:
        if isinstance(d.get(k), (int, float)) and not isinstance(d.get(k), bool):
            return d[k], k
    return None, None

def gib(b):
    return "?" if b is None else f"{b / 2**30:.2f}"

def secs(s):
    return "?" if s is None else (f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s")

records = []
try:
    with open(os.path.join(out, "bench.jsonl"), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                notes.append(f"bench.jsonl line {n} is not JSON")
                continue
            results = rec.get("results")
            if isinstance(results, list) and results:
                top = {k: v for k, v in rec.items() if k != "results"}
                records += [{**top, **r} for r in results if isinstance(r, dict)]
            else:
                records.append(rec)
except FileNotFoundError:
    pass

devices, groups = set(), {}
for r in records:
    side = r.get("_side") or ("ours" if r.get("implementation") == "pilot" else "pytorch")
    name = r.get("device_name") or r.get("device")
    if name and name not in ("cuda", "cpu"):
        devices.add(str(name))
    key = (str(r.get("case") or r.get("_step") or "?"), str(r.get("precision") or "?"))
    g = groups.setdefault(key, {"ours": {"s": [], "peak": [], "alloc": []}, "pytorch": {"s": [], "peak": [], "alloc": []}})
    s, _ = first(r, ("seconds", "median_seconds", "median_s", "total_s"))
    peak, _ = first(r, ("peak_device_bytes", "peak_reserved_bytes", "peak_allocated_bytes"))
    alloc, _ = first(r, ("peak_allocated_bytes",))
    label = f"{side} {key[0]} {key[1]} round {r.get('_round', '?')}"
    if s is None:
        notes.append(f"{label}: no seconds/median_seconds/median_s/total_s field")
    else:
        g[side]["s"].append(s)
    if peak is None:
        notes.append(f"{label}: no peak_device_bytes/peak_reserved_bytes field")
    else:
        g[side]["peak"].append(peak)
    if alloc is not None:
        g[side]["alloc"].append(alloc)

print("# CUDA backend check")
print()
print("Device: " + (", ".join(sorted(devices)) if devices else "unknown (no record names it)"))
print()
if groups:
    print("| case | precision | runs ours / PyTorch | ours (median) | PyTorch (median) | ours / PyTorch "
          "| peak ours GiB | peak PyTorch GiB reserved (allocated) |")
    print("|---|---|---|---|---|---|---|---|")
    order = {"unet": 0, "pilot": 1}
    for (case, prec), g in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0])):
        o = statistics.median(g["ours"]["s"]) if g["ours"]["s"] else None
        p = statistics.median(g["pytorch"]["s"]) if g["pytorch"]["s"] else None
        ratio = f"{o / p:.2f}" if o and p else "?"
        po = max(g["ours"]["peak"]) if g["ours"]["peak"] else None
        pp = max(g["pytorch"]["peak"]) if g["pytorch"]["peak"] else None
        pa = max(g["pytorch"]["alloc"]) if g["pytorch"]["alloc"] else None
        print(f"| {case} | {prec} | {len(g['ours']['s'])} / {len(g['pytorch']['s'])} | {secs(o)} | {secs(p)} "
              f"| {ratio} | {gib(po)} | {gib(pp)}" + (f" ({gib(pa)})" if pa is not None else "") + " |")
    print()
    print("ours / PyTorch > 1: ours is slower. unet: the median over rounds of each run's median; "
          "ours' peak is its allocator's reserved bytes.")
else:
    print("No benchmark records.")
print()

for name in ("parity", "e2e"):
    rec = load(os.path.join(out, f"{name}.json"))
    if rec is None:
        print(f"**{name}**: no {name}.json")
        print()
        continue
    rows = rec.get("rows") if isinstance(rec.get("rows"), list) else []
    bad = [r for r in rows if isinstance(r, dict) and r.get("ok") is False]
    verdict = {True: "ok", False: "FAILED"}.get(rec.get("ok"), "?")
    print(f"**{name}**: {verdict}, {len(rows) - len(bad)} of {len(rows)} rows pass")
    if name == "e2e" and rows:
        print()
        print("| template | max pixel difference | cpu s | cuda s | ok |")
        print("|---|---|---|---|---|")
        for r in rows:
            diff, cpu, cuda = (r.get(k) for k in ("max_pixel_difference", "cpu_seconds", "cuda_seconds"))
            print(f"| {r.get('template', '?')} | {diff if diff is not None else '?'} "
                  f"| {cpu if cpu is None else f'{cpu:.2f}'} | {cuda if cuda is None else f'{cuda:.2f}'} | {r.get('ok', '?')} |")
    for r in bad[:40]:
        print(f"- FAIL {r.get('op', r.get('template', '?'))} {r.get('precision', '')}: "
              f"errors {json.dumps(r.get('errors', r.get('max_pixel_difference')))}, tolerance {r.get('tolerance', '?')}")
    if len(bad) > 40:
        print(f"- … and {len(bad) - 40} more")
    print()

print("| step | status | exit | seconds | note |")
print("|---|---|---|---|---|")
try:
    with open(steps_path, encoding="utf-8") as f:
        for line in f:
            cells = line.rstrip("\n").split("\t") + [""] * 5
            print("| " + " | ".join(cells[:5]) + " |")
except FileNotFoundError:
    pass
if notes:
    print()
    print("Notes:")
    for n in notes:
        print(f"- {n}")
PY
}

cmd_remote() {
    cd "$ROOT"
    mkdir -p "$OUT"
    WORK=$(mktemp -d)
    STEPS=$WORK/steps.tsv
    : >"$STEPS"
    : >"$OUT/bench.jsonl"
    # Everything from here on also goes to $OUT/log.txt; the EXIT trap waits
    # for tee so the log is complete when the command returns.
    exec 3>&1 4>&2
    exec > >(tee -a "$OUT/log.txt") 2>&1
    TEE_PID=$!
    trap 'status=$?; exec 1>&3 2>&4; wait "$TEE_PID" 2>/dev/null; rm -rf "$WORK"; exit $status' EXIT
    echo "gpu-check remote: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), budget ${BUDGET} s, steps ${ONLY}, rounds ${ROUNDS}"
    remote_setup
    remote_wheels
    remote_steps
    echo
    echo "=== table (at ${SECONDS} s)"
    remote_table || warn "the table could not be made"
    if awk -F'\t' '$2 != "ok" { bad = 1 } END { exit !bad }' "$STEPS"; then
        echo "gpu-check remote: some steps did not pass (${SECONDS} s)"
        return 1
    fi
    echo "gpu-check remote: every step passed (${SECONDS} s)"
}

# =========================================================================== main

CALLER_DIR=$PWD
MODE=""
PACK_DIR=""
SKIP_BUILD=0 NO_COMPRESS=0 MAX_MIB=60
ROUNDS=3 PILOT_ROUNDS=1 BUDGET=470 ONLY=parity,e2e,noise,unet,pilot

while (($#)); do
    case $1 in
        -h | --help) usage; exit 0 ;;
        pack | remote) [[ -z $MODE ]] || die "one command at a time"; MODE=$1 ;;
        --dry-run) [[ -z $MODE ]] || die "one command at a time"; MODE=dry-run ;;
        --skip-build) SKIP_BUILD=1 ;;
        --no-compress) NO_COMPRESS=1 ;;
        --max-mib) MAX_MIB=${2:?--max-mib N}; shift ;;
        --rounds) ROUNDS=${2:?--rounds N}; shift ;;
        --pilot-rounds) PILOT_ROUNDS=${2:?--pilot-rounds N}; shift ;;
        --budget) BUDGET=${2:?--budget SECONDS}; shift ;;
        --skip-bench) ONLY=parity,e2e,noise ;;
        --only) ONLY=${2:?--only parity,e2e,noise,unet,pilot}; shift ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [[ -z $PACK_DIR ]] || die "unexpected argument $1"; PACK_DIR=$1 ;;
    esac
    shift
done
[[ -n $MODE ]] || { usage; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $BUDGET =~ ^[0-9]+$ && $MAX_MIB =~ ^[0-9]+$ ]] || die "--rounds, --budget and --max-mib take whole numbers"
for step in ${ONLY//,/ }; do
    [[ $step =~ ^(parity|e2e|noise|unet|pilot)$ ]] || die "--only: unknown step $step (parity, e2e, noise, unet, pilot)"
done
if [[ -z $PACK_DIR ]]; then PACK_DIR=$ROOT/.gpu-pack; else PACK_DIR=$(absolute "$PACK_DIR"); fi
OUT=$(absolute "${OUT:-/tmp/gpu-check-out}")

case $MODE in
    pack) cmd_pack ;;
    dry-run)
        cmd_pack
        rel=$(repo_relative "$PACK_DIR")
        echo
        echo "dry run: the pack fits. On the GPU machine (the run tool), from the repository root:"
        echo "  command:   bash scripts/gpu-check.sh remote ${rel:-$PACK_DIR}"
        echo "  carry:     [\"${rel:-$PACK_DIR}\"]"
        echo "  timeout_s: 540   (remote's own budget: ${BUDGET} s; results in \$OUT: log.txt parity.json e2e.json bench.jsonl table.md)"
        ;;
    remote) cmd_remote ;;
esac
