#!/usr/bin/env bash
# Fine-tuning recipe, end to end: pretrain `cnn` on MNIST, then fine-tune it on Fashion-MNIST
# (a) head only (body frozen), (b) discriminative groups, (c) everything at one LR — each
# with its own range test and `train --use-suggested`. Prints test accuracy and time of each.
# Usage: examples/fine_tuning.sh [DATA_ROOT (with mnist/ and fashion-mnist/)] [EPOCHS]
set -eu
root=${1:-../shared/data}
epochs=${2:-1}
lrfind=${LRFIND:-target/release/lrfind}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# cnn: 0 conv, 3 conv, 7 fc 128, 9 the head (a new head for Fashion-MNIST's 10 classes is
# what a transfer would use; both sets have 10 classes, so the pretrained one is kept).
$lrfind train --data mnist --data-dir "$root/mnist" --model cnn --lr 1e-3 --epochs "$epochs" \
  --out-dir "$work/pre" -q --json > "$work/pre.json"
echo "pretrained on MNIST: test acc $(python3 -c "import json,sys; print(round(100*json.load(open(sys.argv[1]))['test']['accuracy'],2))" "$work/pre.json") %"
fine_tune() {
  name=$1; shift
  start=$(date +%s.%N)
  $lrfind --data fashion-mnist --data-dir "$root/fashion-mnist" --model cnn \
    --init-from "$work/pre/final.safetensors" --min 1e-6 --max 1 --report "$work/$name.json" -q "$@"
  $lrfind train --use-suggested --report "$work/$name.json" --epochs "$epochs" \
    --out-dir "$work/$name" -q --json > "$work/$name.out"
  end=$(date +%s.%N)
  python3 - "$work/$name.json" "$work/$name.out" "$name" "$start" "$end" <<'PY'
import json, sys
rep, run = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
groups = ", ".join(f"{g['pattern']} {'frozen' if g['frozen'] else format(g['lr'], '.2e')}"
                   for g in rep.get("param_groups", [])) or "one group"
print(f"{sys.argv[3]}: suggested {rep['suggested_lr']:.3e} ({groups}); "
      f"test acc {100 * run['test']['accuracy']:.2f} %; "
      f"{float(sys.argv[5]) - float(sys.argv[4]):.1f} s (range test + {len(run['history'])} epoch)")
PY
}
fine_tune head-only --freeze '[03].*' --freeze '7.*'
fine_tune discriminative --param-groups '[03].*=0.01, 7.*=0.1, 9.*=1'
fine_tune one-lr
