#!/usr/bin/env bash
# Transfer learning on SpamAssassin with text_classifier: does masked-LM pretraining on the training e-mails (their
# texts only) help when few of them are labelled?
#   (a) pretrain a BERT on the train split's texts (no labels) into $OUT/pretrained
#   (b) for each number of labels N (50, 100, 200, 500: data/spam/subsets/train-N-seed-S.jsonl; all: train.jsonl) and
#       seed S: fine-tune the pretrained BERT (train --init) and train the default transformer from scratch; both
#       are validated on valid.jsonl (model selection) and scored on test.jsonl
#   (c) one CSV line per run appended to $OUT/results.csv: method,labels,seed,test_accuracy,seconds (train + eval)
#   (d) LoRA (rank $LORA_RANK) against full fine-tuning on the $LORA_LABELS-label subsets
#   (e) self-training on the $SELF_LABELS-label subsets: the fine-tuned model of (b) labels the other training
#       e-mails (benchmarks/transfer/pseudo_labels.py keeps those predicted with probability >= $SELF_THRESHOLD),
#       and the pretrained BERT is fine-tuned anew on the labelled subset plus those; still N true labels
# A run already in results.csv is skipped, so an interrupted benchmark continues where it stopped; the pretraining
# resumes from its checkpoint. benchmarks/transfer/spam_subsets.py writes the subsets and scores the TF-IDF +
# logistic regression baseline on the same ones.
#
#   benchmarks/transfer/run_transfer.sh            the experiment (hours on a laptop: see the settings below)
#   benchmarks/transfer/run_transfer.sh --smoke    tiny models, 1 epoch, 2 subsets, into runs/transfer-smoke: checks
#                                                  that the pipeline runs (skipped when data/spam is absent)
# Every setting below can be overridden from the environment: PRETRAIN_EPOCHS=3 SEEDS="0 1" run_transfer.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

# ---- settings ----------------------------------------------------------------------------------------------------
TC=${TC:-build/release/examples/text_classifier/text_classifier}
DATA=${DATA:-data/spam}  # data/spam-mail: subject and decoded body of each e-mail (scripts/mail_text.py)
OUT=${OUT:-runs/transfer}
THREADS=${THREADS:-$(nproc)}
MATMUL_PRECISION=${MATMUL_PRECISION:-highest}  # medium: bf16 products with float sums (CPUs with AVX512_BF16)
SIZES=${SIZES:-"50 100 200 500 all"}
SEEDS=${SEEDS:-"0 1 2 3 4"}
ALL_SEEDS=${ALL_SEEDS:-"0"}  # the whole training set: one seed (a run there cost 886 s against 380 s at 500 labels)
KEEP_CHECKPOINTS=${KEEP_CHECKPOINTS:-0}  # 0: remove each run's checkpoints/ once it is scored (model.safetensors stays)

# (a) pretraining: a small BERT (4 layers of 256) on the training e-mails, 256 tokens of each from its start and end
# (the truncation fine-tuning then uses); 6 epochs take about half an hour on 2 cores
PRETRAIN_SIZE=${PRETRAIN_SIZE:-"--hidden 256 --layers 4 --heads 4 --intermediate 1024 --max-length 256 --truncation head_tail --vocab-size 8000"}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-6}
PRETRAIN_LR=${PRETRAIN_LR:-5e-4}
PRETRAIN_BATCH=${PRETRAIN_BATCH:-32}
PRETRAIN_CORPUS=${PRETRAIN_CORPUS:-$DATA/train.jsonl}
# PRETRAINED=DIR (unset by default): fine-tune that BERT folder instead of pretraining one into $OUT/pretrained

# (b) full fine-tuning of the pretrained BERT (max_length: its position table; truncation: as pretrained)
FT_EPOCHS=${FT_EPOCHS:-10}
FT_EPOCHS_ALL=${FT_EPOCHS_ALL:-3}  # on the whole training set (an epoch there is 24 of the 200-label subset's)
FT_LR=${FT_LR:-1e-4}
FT_BATCH=${FT_BATCH:-16}
FT_ARGS=${FT_ARGS:-""}  # more train options, e.g. "--truncation head" (the folder's recorded truncation otherwise)
# (b) the default transformer from scratch (its WordPiece vocabulary learned from the labelled subset)
SCRATCH_EPOCHS=${SCRATCH_EPOCHS:-10}
SCRATCH_LR=${SCRATCH_LR:-1e-3}
SCRATCH_BATCH=${SCRATCH_BATCH:-16}
SCRATCH_ARGS=${SCRATCH_ARGS:-""}  # e.g. "--max-length 128" for the pretrained model's truncation
# (d) LoRA on query and value, the classifier (and the pooler the masked-LM folder lacks) trained in full
LORA_RANK=${LORA_RANK:-8}  # 0: no LoRA runs
LORA_LABELS=${LORA_LABELS:-200}
LORA_EPOCHS=${LORA_EPOCHS:-10}
LORA_LR=${LORA_LR:-1e-3}
LORA_BATCH=${LORA_BATCH:-16}
# (e) self-training (SELF_LABELS="": no self-training runs)
SELF_LABELS=${SELF_LABELS:-""}
SELF_THRESHOLD=${SELF_THRESHOLD:-0.9}
SELF_EPOCHS=${SELF_EPOCHS:-2}

if [[ "${1:-}" == "--smoke" ]]; then
  if [[ ! -f $DATA/train.jsonl || ! -f $DATA/valid.jsonl || ! -f $DATA/test.jsonl ]]; then
    echo "run_transfer: --smoke skipped: $DATA/{train,valid,test}.jsonl not found" >&2
    exit 0
  fi
  OUT=runs/transfer-smoke
  SIZES="50 $LORA_LABELS"
  SEEDS="0"
  PRETRAIN_SIZE="--hidden 16 --layers 1 --heads 2 --intermediate 32 --max-length 32 --vocab-size 500"
  PRETRAIN_EPOCHS=1
  mkdir -p "$OUT"
  head -n 300 "$DATA/train.jsonl" > "$OUT/corpus.jsonl"  # the first 300 e-mails' texts
  PRETRAIN_CORPUS=$OUT/corpus.jsonl
  FT_EPOCHS=1 FT_EPOCHS_ALL=1 SCRATCH_EPOCHS=1 LORA_EPOCHS=1 SELF_EPOCHS=1
  SELF_LABELS=$LORA_LABELS
  SCRATCH_ARGS="--d-model 16 --heads 2 --ffn 32 --max-length 32 --vocab-size 500"
  rm -f "$OUT/results.csv"
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--smoke]" >&2
  exit 2
fi

if [[ ! -x $TC ]]; then
  echo "run_transfer: $TC not found; build it: cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release" \
       "-DEIGENFORMER_BUILD_EXAMPLES=ON && cmake --build build/release --target text_classifier" >&2
  exit 1
fi
for f in train valid test; do
  [[ -f $DATA/$f.jsonl ]] || { echo "run_transfer: $DATA/$f.jsonl not found" >&2; exit 1; }
done
mkdir -p "$OUT/runs"
RESULTS=$OUT/results.csv
[[ -f $RESULTS ]] || echo "method,labels,seed,test_accuracy,seconds" > "$RESULTS"

tc() { "$TC" "$@" --matmul-precision "$MATMUL_PRECISION"; }  # text_classifier at the chosen matmul precision
now() { date +%s.%N; }
since() { awk -v now="$(now)" -v start="$1" 'BEGIN { printf "%.1f", now - start }'; }

# The training file of N labels and seed S.
train_file() {
  if [[ $1 == all ]]; then echo "$DATA/train.jsonl"; else echo "$DATA/subsets/train-$1-seed-$2.jsonl"; fi
}

# run METHOD N SEED TRAIN-ARGS...: trains (unless results.csv has the run), scores on test.jsonl, appends the line.
run() {
  local method=$1 n=$2 seed=$3
  shift 3
  if grep -q "^$method,$n,$seed," "$RESULTS"; then
    echo "run_transfer: $method $n labels seed $seed: in $RESULTS already" >&2
    return
  fi
  local train=${RUN_TRAIN:-}  # RUN_TRAIN: a training file other than the subset's
  [[ -n $train ]] || train=$(train_file "$n" "$seed")
  [[ -f $train ]] || { echo "run_transfer: $train not found (benchmarks/transfer/spam_subsets.py writes it)" >&2; exit 1; }
  local dir=$OUT/runs/$method-$n-seed-$seed start accuracy
  start=$(now)
  echo "run_transfer: $method, $n labels, seed $seed" >&2
  tc train --train "$train" --valid "$DATA/valid.jsonl" --out "$dir" --overwrite --seed "$seed" \
        --threads "$THREADS" "$@" > "$dir.log" 2>&1 || { echo "run_transfer: failed, see $dir.log" >&2; tail -3 "$dir.log" >&2; exit 1; }
  accuracy=$(tc eval --model "$dir" --data "$DATA/test.jsonl" --threads "$THREADS" | awk '/^accuracy /{print $2}')
  echo "$method,$n,$seed,$accuracy,$(since "$start")" >> "$RESULTS"
  [[ $KEEP_CHECKPOINTS == 1 ]] || rm -rf "$dir/checkpoints"
  echo "run_transfer: $method, $n labels, seed $seed: test accuracy $accuracy" >&2
}

# (a) pretraining (resumed when a checkpoint exists; a finished one only rewrites its model folder), unless
# PRETRAINED names a folder to fine-tune instead
if [[ -n ${PRETRAINED:-} ]]; then
  [[ -f $PRETRAINED/config.json ]] || { echo "run_transfer: PRETRAINED=$PRETRAINED holds no config.json" >&2; exit 1; }
  echo "run_transfer: fine-tuning $PRETRAINED (no pretraining)" >&2
else
  PRETRAINED=$OUT/pretrained
  resume=()
  [[ -f $PRETRAINED/training/checkpoint.json ]] && resume=(--resume)
  echo "run_transfer: pretraining into $PRETRAINED ($PRETRAIN_EPOCHS epochs)" >&2
  start=$(now)
  # shellcheck disable=SC2086  # PRETRAIN_SIZE is a list of options
  tc pretrain --corpus "$PRETRAIN_CORPUS" --valid "$DATA/valid.jsonl" --out "$PRETRAINED" $PRETRAIN_SIZE \
        --epochs "$PRETRAIN_EPOCHS" --lr "$PRETRAIN_LR" --batch-size "$PRETRAIN_BATCH" --threads "$THREADS" \
        "${resume[@]}" 2>&1 | tee "$OUT/pretrain.log" | grep -E "^(data|tokenizer|epoch [0-9]+:|model folder)" >&2
  echo "run_transfer: pretraining took $(since "$start") s" >&2
fi

# (b) and (c): pretrained and fine-tuned against trained from scratch, for every number of labels and seed
for n in $SIZES; do
  seeds=$SEEDS
  [[ $n == all ]] && seeds=$ALL_SEEDS
  for seed in $seeds; do
    epochs=$FT_EPOCHS
    [[ $n == all ]] && epochs=$FT_EPOCHS_ALL
    # shellcheck disable=SC2086  # FT_ARGS is a list of options
    run bert-pretrained "$n" "$seed" --init "$PRETRAINED" --epochs "$epochs" --lr "$FT_LR" --batch-size "$FT_BATCH" \
        $FT_ARGS
    # shellcheck disable=SC2086
    run transformer-scratch "$n" "$seed" --epochs "$SCRATCH_EPOCHS" --lr "$SCRATCH_LR" --batch-size "$SCRATCH_BATCH" \
        $SCRATCH_ARGS
  done
done

# (d) LoRA against full fine-tuning (bert-pretrained above) on the LORA_LABELS-label subsets (LORA_RANK=0: skipped)
[[ $LORA_RANK == 0 ]] || for seed in $SEEDS; do
  run "bert-lora$LORA_RANK" "$LORA_LABELS" "$seed" --init "$PRETRAINED" --lora-rank "$LORA_RANK" \
      --epochs "$LORA_EPOCHS" --lr "$LORA_LR" --batch-size "$LORA_BATCH"
done

# (e) self-training on the SELF_LABELS-label subsets, the teacher being the fine-tuned run of (b)
for n in $SELF_LABELS; do
  for seed in $SEEDS; do
    teacher=$OUT/runs/bert-pretrained-$n-seed-$seed
    self_train=$OUT/runs/self-$n-seed-$seed.jsonl
    if ! grep -q "^bert-self-training,$n,$seed," "$RESULTS"; then
      [[ -f $teacher/config.json ]] || { echo "run_transfer: self-training needs $teacher (SIZES with $n)" >&2; exit 1; }
      python3 benchmarks/transfer/pseudo_labels.py texts --train "$DATA/train.jsonl" |
        tc predict --model "$teacher" --threads "$THREADS" > "$self_train.predictions"
      python3 benchmarks/transfer/pseudo_labels.py merge --train "$DATA/train.jsonl" \
        --labelled "$(train_file "$n" "$seed")" --predictions "$self_train.predictions" \
        --threshold "$SELF_THRESHOLD" --out "$self_train"
    fi
    RUN_TRAIN=$self_train run bert-self-training "$n" "$seed" --init "$PRETRAINED" --epochs "$SELF_EPOCHS" \
        --lr "$FT_LR" --batch-size "$FT_BATCH"
  done
done

# Mean [min-max] test accuracy per method and number of labels.
echo "run_transfer: $RESULTS" >&2
echo "| method | labels | runs | test accuracy, mean [min-max] | seconds per run |"
echo "|---|---:|---:|---|---:|"
awk -F, 'NR > 1 {
  k = $1 "," $2; n[k]++; s[k] += $4; t[k] += $5
  if (!(k in lo) || $4 < lo[k]) lo[k] = $4
  if (!(k in hi) || $4 > hi[k]) hi[k] = $4
} END {
  for (k in n) { split(k, p, ","); printf "| %s | %s | %d | %.4f [%.4f-%.4f] | %.0f |\n", p[1], p[2], n[k], s[k] / n[k], lo[k], hi[k], t[k] / n[k] }
}' "$RESULTS" | sort -t'|' -k2,2 -k3,3n
