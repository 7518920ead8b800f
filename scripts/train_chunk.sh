#!/usr/bin/env bash
# One chunk of a training that runs in short GPU slots (docs/training-256.md): resume from the committed
# state, train for MINUTES, write the new state, then measure the gates; everything that must come back
# goes to OUT (at most 8 files of at most 16 MB: the 4 state files, train.log, gates.json, 2 sample grids).
#
#   scripts/train_chunk.sh [hydra overrides of scripts/train.py...]
#
# Settings (environment):
#   STATE      folder holding the committed training-state/ (default models-in-training/toy-faces-256;
#              none there = a new training)
#   PRESET     the train group's preset (default toyfaces256)
#   MINUTES    training wall time of this chunk (default 7: the chunk, the gates and the start fit in 10 min)
#   DEVICE     auto, cuda, cpu, ... (default auto; cpu works without CUDA)
#   OUT        where the results go (default $OUT of the device machine, else outputs/train_chunk)
#   GATES      1 = measure the gates after training (default), 0 = skip them
#   GATE_ARGS  extra overrides of scripts/model_gates.py (e.g. 'num_pairs=10')
#   PYTHON     the interpreter (default python3)
# Python packages that the machine lacks (hydra-core, omegaconf, antlr4, lpips, pytorch-fid) are installed
# from the wheels in .whl/ when that folder exists.
set -euo pipefail

STATE=${STATE:-models-in-training/toy-faces-256}
PRESET=${PRESET:-toyfaces256}
MINUTES=${MINUTES:-7}
DEVICE=${DEVICE:-auto}
OUT=${OUT:-outputs/train_chunk}
GATES=${GATES:-1}
GATE_ARGS=${GATE_ARGS:-}
PYTHON=${PYTHON:-python3}

need="import hydra, omegaconf, safetensors, PIL, tqdm, pytorch_fid"
if ! "$PYTHON" -c "$need" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PYTHON" -c "$need" || { echo "train_chunk: missing Python packages; put their wheels in .whl/ (docs/training-256.md)" >&2; exit 2; }
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RUN=$(mktemp -d /tmp/train_chunk.XXXXXX)
if [ -f "$STATE/training-state/state.safetensors" ]; then
  cp -r "$STATE/training-state" "$RUN/"
  echo "train_chunk: resuming from $STATE/training-state"
else
  echo "train_chunk: no state in $STATE/training-state: a new training"
fi

"$PYTHON" scripts/train.py "+train=$PRESET" "out_dir=$RUN" resume=true "train.max_minutes=$MINUTES" \
  "train.device=$DEVICE" logger=none "hydra.run.dir=$RUN/hydra" "$@" 2>&1 | tee "$OUT/train.log"

# The state first: it comes back even if the gates fail.
mkdir -p "$OUT/training-state"
cp "$RUN"/training-state/*.safetensors "$OUT/training-state/"
cp "$(ls "$RUN"/samples-*.png | tail -1)" "$OUT/samples-train.png"
for f in "$OUT"/training-state/*.safetensors; do
  size=$(stat -c %s "$f")
  [ "$size" -le $((16 * 1024 * 1024)) ] || { echo "train_chunk: $f is $size bytes, over 16 MiB" >&2; exit 3; }
done

if [ "$GATES" = 1 ]; then
  # The paper's drag settings (block 5, r1 3 / r2 12 at 512 px, scaled to the model's size). An early model
  # may have too few faces to measure them: that is said in train.log, and the state has come back anyway.
  # shellcheck disable=SC2086
  if "$PYTHON" scripts/model_gates.py "generator=$RUN/network-final.safetensors" drag=paper "device=$DEVICE" \
      progress=false "hydra.run.dir=$RUN/gates" $GATE_ARGS > "$RUN/gates.log" 2>&1; then
    cp "$RUN/gates/gates.json" "$RUN/gates/samples.png" "$OUT/"
    echo "train_chunk: gates: $(tail -1 "$RUN/gates.log" | cut -c1-600)" | tee -a "$OUT/train.log"
  else
    echo "train_chunk: the gates could not be measured: $(tail -3 "$RUN/gates.log")" | tee -a "$OUT/train.log"
  fi
fi
echo "train_chunk: done; bring back $OUT/training-state/* into $STATE/training-state/ and commit it"
