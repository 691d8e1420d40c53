#!/usr/bin/env bash
# The temporal-stability figures of README "Measured": flicker (warping error) of the
# shipped styles next to their per-frame filters, and the pass's temporal mode at several
# history weights with its ghosting (PSNR over fast-moving pixels) at 30 and 10 fps.
#
#   bash benchmarks/temporal.sh [WORK]          data in WORK (default temporal-work/), figures in
#                                               benchmarks/results/$POSTFX_RESULTS_LABEL (llvmpipe)
#   FINETUNE=1 INIT_ink=M INIT_watercolor=M bash benchmarks/temporal.sh
#                                               also fine-tune each style from M with and without
#                                               the temporal loss, compared in STYLE_finetune_flicker.json
#                                               (the shipped styles are already fine-tuned: for M take
#                                               the earlier file from git history)
#
# Held-out sequences: town seed 13, 8 x 8 frames at 384x224, at 30 fps and again at 10 fps
# (faster motion), and 8 x 24 frames for a network spread over frames; fine-tuning
# sequences: town seed 11, 40 x 6 frames. Paths in the figure
# files are relative to WORK. About 3 min without FINETUNE, 20 min with, on 2 cores.
set -euo pipefail
results="$(cd "$(dirname "$0")" && pwd)/results/${POSTFX_RESULTS_LABEL:-llvmpipe}"
work="${1:-temporal-work}"
styles="ink watercolor"
mkdir -p "$work" "$results"
cd "$work"

render() {          # NAME SEQUENCES FRAMES SEED [render options]: rendered once, then kept
    [ -f "$1/views.json" ] || postfx dataset render --sequences "$2" --frames "$3" --size 384x224 --seed "$4" \
        --no-progress "${@:5}" "$1"
}
stylize() {         # DATASET STYLE: targets DATASET-STYLE, made once
    [ -f "$1-$2/targets.json" ] || postfx dataset stylize "$1" "$1-$2" --style "$2" --no-progress
}

render heldout-seq 8 8 13
for style in $styles; do
    stylize heldout-seq "$style"
    postfx eval --temporal "$style" "heldout-seq-$style" --json "$results/${style}_flicker.json"
done

if [ "${FINETUNE:-0}" = 1 ]; then
    render train-seq 40 6 11
    for style in $styles; do
        stylize train-seq "$style"
        init_var="INIT_$style"
        init="${!init_var:-$style}"
        for weight in 0 6000; do
            postfx train "train-seq-$style" --init "$init" --temporal "$weight" --steps 900 --lr 1e-4 --crop 128 \
                --batch 8 --seed 1 --threads 2 --no-progress --sample-every 0 --out "${style}_t$weight.safetensors" \
                --name "$style"
        done
        postfx eval --temporal "$init" "heldout-seq-$style" --compare "${style}_t0.safetensors" \
            "${style}_t6000.safetensors" --json "$results/${style}_finetune_flicker.json"
    done
fi

render heldout-fast 8 8 13 --fps 10
stylize heldout-fast ink
# A network spread over frames (one dispatch a frame: 8 frames a result for ink), on longer
# sequences so that results follow one another; and the same sequences with the whole network
render heldout-long 8 24 13
stylize heldout-long ink
postfx eval --temporal ink heldout-long-ink --pass-temporal 0 0.5 --frame-budget-ms 1e-6 \
    --json "$results/ink_spread_flicker.json"
postfx eval --temporal ink heldout-long-ink --pass-temporal 0 0.5 --json "$results/ink_long_flicker.json"

weights="0 0.3 0.5 0.7 0.85"
postfx eval --temporal ink heldout-seq-ink --pass-temporal $weights --json "$results/ink_temporal_pass_30fps.json"
postfx eval --temporal ink heldout-fast-ink --pass-temporal $weights --json "$results/ink_temporal_pass_10fps.json"
