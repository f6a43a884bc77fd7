#!/usr/bin/env bash
# Crop-and-stitch against whole-image PILOT on a large picture: a 1024x768
# procedural photo with a 64x48 hole near a corner, `pilot run
# text-inpaint-crop` (the hole's surroundings at --crop-size) against `pilot
# run text-inpaint` (every pixel), alternated for R rounds, medians in a
# table. Both runs are ours (the ratio is the point; no PyTorch peer does
# crop-and-stitch). The model: --model DIR (default: a tiny random-weight
# model made with `pilot models create-tiny`; give a real SD 1.5 folder for
# figures that mean something).
#
#   Benchmarks/crop_vs_whole.sh [--rounds R] [--steps N] [--crop-size S] [--model DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 steps=10 crop=512 model=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --crop-size) crop=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        *) echo "crop_vs_whole.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
swift build -c release --product pilot >&2
pilot=.build/release/pilot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$model" ]; then
    model=$work/tiny
    "$pilot" models create-tiny "$model" >/dev/null
fi
# The picture and the hole, as PNGs written with Python's standard library only.
python3 - "$work" <<'PY'
import math, struct, sys, zlib
def png(path, w, h, rows, gray=False):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if gray else 2, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
w, h = 1024, 768
photo = [[c for x in range(w) for c in (int(128 + 90 * math.sin(x / 97) * math.cos(y / 61)), int(100 + 80 * math.cos((x + y) / 150)),
                                         min(255, 60 + y // 5))] for y in range(h)]
png(sys.argv[1] + "/photo.png", w, h, photo)
png(sys.argv[1] + "/hole.png", w, h, [[255 if 880 <= x < 944 and 660 <= y < 708 else 0 for x in range(w)] for y in range(h)], gray=True)
PY
common=(--input "image=$work/photo.png" --input "mask=$work/hole.png" --set "checkpoint=$model" --set "steps=$steps"
        --set interval=2 --set inner_steps=1)
crop_times=() whole_times=()
for r in $(seq "$rounds"); do
    start=$(date +%s%N)
    "$pilot" run text-inpaint-crop "${common[@]}" --set "crop_size=$crop" --output "$work/crop" >/dev/null 2>&1
    crop_times+=("$(( ($(date +%s%N) - start) / 1000000 ))")
    start=$(date +%s%N)
    "$pilot" run text-inpaint "${common[@]}" --output "$work/whole" >/dev/null 2>&1
    whole_times+=("$(( ($(date +%s%N) - start) / 1000000 ))")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
crop_median=$(median "${crop_times[@]}") whole_median=$(median "${whole_times[@]}")
echo "| run ($rounds rounds, $steps steps, $(nproc) cores) | median ms | all runs (ms) |"
echo "|---|--:|---|"
echo "| text-inpaint-crop (crop $crop², PILOT on the crop) | $crop_median | ${crop_times[*]} |"
echo "| text-inpaint (1024×768, PILOT on every pixel) | $whole_median | ${whole_times[*]} |"
echo "| ratio whole / crop | $(awk -v w="$whole_median" -v c="$crop_median" 'BEGIN { printf "%.2f", w / c }') | |"
