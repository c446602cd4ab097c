# The text_classifier command line on a tiny generated corpus: train (transformer and bow), resume, eval,
# predict and plot, checking their files and outputs; then the errors: options checked before any work, a failed run
# that leaves the run it was to replace, run folders whose files disagree, messages naming the file and line; then
# BERT: pretrain (and its resume), train --init of its folder and of the Hugging Face fixtures, LoRA, predict
# --logits against PyTorch's logits, export, and their errors. Run by ctest:
#   cmake -DTEXT_CLASSIFIER=<path to text_classifier> -DWORK_DIR=<scratch folder> [-DHF_DIR=tests/reference/hf]
#         -P cli_test.cmake
cmake_minimum_required(VERSION 3.16)
if(NOT TEXT_CLASSIFIER OR NOT WORK_DIR)
  message(FATAL_ERROR "cli_test.cmake: set TEXT_CLASSIFIER and WORK_DIR")
endif()
if(NOT HF_DIR)
  get_filename_component(HF_DIR ${CMAKE_CURRENT_LIST_DIR}/../../tests/reference/hf ABSOLUTE)
endif()
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

include(${CMAKE_CURRENT_LIST_DIR}/test_corpus.cmake)  # make_corpus()
make_corpus(${WORK_DIR}/train.jsonl 96 1)
make_corpus(${WORK_DIR}/valid.jsonl 24 2)
make_corpus(${WORK_DIR}/test.jsonl 24 3)

function(run_step name)
  execute_process(COMMAND ${TEXT_CLASSIFIER} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  WORKING_DIRECTORY ${WORK_DIR} ${run_step_input})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "text_classifier ${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

# Runs text_classifier with ARGN; expects exit status rc and stderr matching pattern.
function(expect_error name rc pattern)
  execute_process(COMMAND ${TEXT_CLASSIFIER} ${ARGN} RESULT_VARIABLE got OUTPUT_VARIABLE out ERROR_VARIABLE err
                  WORKING_DIRECTORY ${WORK_DIR} ${run_step_input})
  if(NOT got EQUAL rc OR NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "${name}: exit ${got}, expected ${rc} and stderr matching \"${pattern}\":\n${err}")
  endif()
  set(err "${err}" PARENT_SCOPE)
endfunction()

# The SHA-256 of every file of a folder, as one string.
function(folder_hash dir out_var)
  file(GLOB_RECURSE files RELATIVE ${dir} ${dir}/*)
  list(SORT files)
  set(all "")
  foreach(f ${files})
    file(SHA256 ${dir}/${f} h)
    string(APPEND all "${f}=${h};")
  endforeach()
  set(${out_var} "${all}" PARENT_SCOPE)
endfunction()

function(expect_no_file path)
  if(EXISTS ${path})
    message(FATAL_ERROR "expected ${path} not to exist")
  endif()
endfunction()

function(expect_file path)
  if(NOT EXISTS ${path})
    message(FATAL_ERROR "expected ${path} to exist")
  endif()
endfunction()

function(expect_csv_rows path rows)
  file(STRINGS ${path} lines)
  list(LENGTH lines n)
  math(EXPR expected "${rows} + 1")
  if(NOT n EQUAL expected)
    message(FATAL_ERROR "${path}: ${n} lines, expected the header and ${rows} rows")
  endif()
endfunction()

# Checks eval's output: the last line is "accuracy X" with X >= 0.9.
function(expect_accuracy output what)
  string(STRIP "${output}" output)
  string(REGEX MATCH "[^\n]*$" last "${output}")
  if(NOT last MATCHES "^accuracy ([0-9]+\\.[0-9]+)$")
    message(FATAL_ERROR "${what}: the last line is \"${last}\", expected \"accuracy X\"\n${output}")
  endif()
  if(CMAKE_MATCH_1 LESS 0.9)
    message(FATAL_ERROR "${what}: accuracy ${CMAKE_MATCH_1}, expected at least 0.9 on the tiny corpus\n${output}")
  endif()
  foreach(word "macro-F1" "true\\pred")
    string(FIND "${output}" "${word}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${what}: the output lacks \"${word}\"\n${output}")
    endif()
  endforeach()
endfunction()

set(small_net --vocab-size 100 --d-model 16 --heads 2 --ffn 32 --batch-size 8 --lr 1e-2)
set(small_model ${small_net} --max-length 24)

# Transformer: 2 epochs, then resumed for a third.
run_step(train train --train train.jsonl --valid valid.jsonl --out run ${small_model} --epochs 2)
foreach(f config.json vocab.txt model.safetensors metrics.csv curves.svg checkpoint.json
          checkpoints/epoch-2/model.safetensors checkpoints/epoch-2/optimizer.safetensors
          checkpoints/epoch-2/trainer_state.json checkpoints/epoch-2/manifest.json)
  expect_file(${WORK_DIR}/run/${f})
endforeach()
expect_csv_rows(${WORK_DIR}/run/metrics.csv 2)
file(READ ${WORK_DIR}/run/curves.svg svg)
if(NOT svg MATCHES "^<svg" OR NOT svg MATCHES "polyline")
  message(FATAL_ERROR "curves.svg is not the expected SVG:\n${svg}")
endif()
file(READ ${WORK_DIR}/run/config.json config)
foreach(key "\"model_type\": \"transformer\"" "\"labels\"" "\"max_length\": 24" "\"truncation\": \"head_tail\"")
  string(FIND "${config}" "${key}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "config.json lacks ${key}:\n${config}")
  endif()
endforeach()

# A folder holding a run is neither overwritten nor resumed with other settings unless asked.
execute_process(COMMAND ${TEXT_CLASSIFIER} train --train train.jsonl --valid valid.jsonl --out run ${small_model}
                --epochs 2 RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err WORKING_DIRECTORY ${WORK_DIR})
if(NOT rc EQUAL 1 OR NOT err MATCHES "holds a run")
  message(FATAL_ERROR "train into a run folder without --resume or --overwrite: exit ${rc}, expected 1:\n${err}")
endif()
execute_process(COMMAND ${TEXT_CLASSIFIER} train --train train.jsonl --valid valid.jsonl --out run ${small_model}
                --epochs 3 --resume RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err WORKING_DIRECTORY ${WORK_DIR})
if(NOT rc EQUAL 1 OR NOT err MATCHES "epochs was 2, is now 3")
  message(FATAL_ERROR "train --resume with other epochs: exit ${rc}, expected 1 naming the change:\n${err}")
endif()
# A temporary file left by a killed write is removed by the next run.
file(WRITE ${WORK_DIR}/run/model.safetensors.tmp.0123456789abcdef "partial")
run_step(resume train --train train.jsonl --valid valid.jsonl --out run ${small_model} --epochs 3 --resume
         --allow-change epochs)
expect_csv_rows(${WORK_DIR}/run/metrics.csv 3)
expect_no_file(${WORK_DIR}/run/model.safetensors.tmp.0123456789abcdef)

run_step(eval eval --model run --data test.jsonl)
expect_accuracy("${out}" "eval (transformer)")

file(WRITE ${WORK_DIR}/texts.txt "free money winner click offer cash prize\nmeeting project report lunch tomorrow team\n")
set(run_step_input INPUT_FILE ${WORK_DIR}/texts.txt)
run_step(predict predict --model run)
unset(run_step_input)
if(NOT out MATCHES "^spam\t[01]\\.[0-9][0-9][0-9][0-9]\nham\t[01]\\.[0-9][0-9][0-9][0-9]\n$")
  message(FATAL_ERROR "predict printed\n${out}\nexpected \"spam<TAB>p\" then \"ham<TAB>p\"")
endif()
# The same with bf16 products allowed (float where the CPU lacks AVX512_BF16); an unknown precision is refused.
set(run_step_input INPUT_FILE ${WORK_DIR}/texts.txt)
run_step(predict_medium predict --model run --matmul-precision medium)
if(NOT out MATCHES "^spam\t[01]\\.[0-9][0-9][0-9][0-9]\nham\t[01]\\.[0-9][0-9][0-9][0-9]\n$")
  message(FATAL_ERROR "predict --matmul-precision medium printed\n${out}\nexpected \"spam<TAB>p\" then \"ham<TAB>p\"")
endif()
expect_error(bad_precision 2 "--matmul-precision: bf16 not in {highest,high,medium}" predict --model run
             --matmul-precision bf16)
unset(run_step_input)

file(REMOVE ${WORK_DIR}/run/curves.svg)
run_step(plot plot --model run)
expect_file(${WORK_DIR}/run/curves.svg)

# The bag-of-words baseline.
run_step(train_bow train --train train.jsonl --valid valid.jsonl --out bow --model bow --vocab-size 100
         --max-length 24 --batch-size 8 --lr 5e-2 --epochs 2)
expect_csv_rows(${WORK_DIR}/bow/metrics.csv 2)
run_step(eval_bow eval --model bow --data test.jsonl)
expect_accuracy("${out}" "eval (bow)")

# Errors: a missing run folder is a usage error, a run folder without files fails with a message.
execute_process(COMMAND ${TEXT_CLASSIFIER} eval --model ${WORK_DIR} --data test.jsonl RESULT_VARIABLE rc
                ERROR_VARIABLE err OUTPUT_QUIET WORKING_DIRECTORY ${WORK_DIR})
if(rc EQUAL 0 OR NOT err MATCHES "config.json")
  message(FATAL_ERROR "eval of a folder without a run should fail naming config.json (rc ${rc}):\n${err}")
endif()
message(STATUS "text_classifier cli ok")

# Bad options end with a clear error naming the option before any work: exit 2 for the command line, 1 when the
# check needs the data or the machine. No run folder is made.
set(data --train train.jsonl --valid valid.jsonl)
expect_error(head_tokens 1 "--head-tokens 9999: expected -1 \\(a quarter\\) or 0 to 22 \\(--max-length 24 minus"
             train ${data} --out never ${small_model} --truncation head_tail --head-tokens 9999)
expect_error(zero_epochs 2 "--epochs: 0: expected at least 1" train ${data} --out never ${small_model} --epochs 0)
execute_process(COMMAND ${TEXT_CLASSIFIER} train ${data} ${small_model} --out "" RESULT_VARIABLE rc ERROR_VARIABLE err
                OUTPUT_QUIET WORKING_DIRECTORY ${WORK_DIR})  # not through a function: its arguments drop the ""
if(NOT rc EQUAL 2 OR NOT err MATCHES "--out: expected a folder, got an empty name")
  message(FATAL_ERROR "train --out \"\": exit ${rc}, expected 2 naming --out:\n${err}")
endif()
expect_error(too_many_threads 2 "--threads: 1000000 threads is more than 8 per core"
             train ${data} --out never ${small_model} --threads 1000000)
expect_error(eval_threads 2 "--threads: 1000000 threads is more than 8 per core"
             eval --model run --data test.jsonl --threads 1000000)
expect_error(epochs_overflow 1 "--epochs 9223372036854775807: with 12 optimizer steps per epoch .* the step count overflows"
             train ${data} --out never ${small_model} --epochs 9223372036854775807)
expect_error(huge_model 1 "--d-model 100000000 .*: training would need about .* more than the .* of memory this machine has"
             train ${data} --out never --d-model 100000000 --heads 2 --vocab-size 100 --max-length 24)
expect_error(max_length_1 1 "--max-length 1: expected 0 \\(the longest text\\) or at least 2"
             train ${data} --out never ${small_net} --max-length 1)
expect_no_file(${WORK_DIR}/never)

# Batch sizes near the largest integer make one batch of everything: no arithmetic on them overflows.
foreach(b 9223372036854775806 4611686018427387904)
  run_step(huge_batch train ${data} --out huge_batch --model bow --vocab-size 100 --max-length 24 --epochs 1
           --batch-size ${b} --overwrite)
  if(NOT err MATCHES " 1 batches \\(1 optimizer steps\\) per epoch")
    message(FATAL_ERROR "train --batch-size ${b}: expected one batch per epoch:\n${err}")
  endif()
endforeach()

# A run that fails replaces nothing: the finished run in its folder stays as it was, and no staging folder is left.
folder_hash(${WORK_DIR}/run before)
expect_error(failed_overwrite 1 "is not finite" train ${data} --out run --vocab-size 100 --max-length 24 --d-model 16
             --heads 2 --ffn 32 --batch-size 8 --epochs 3 --overwrite --lr 1e30 --clip 0)
folder_hash(${WORK_DIR}/run after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "a failed --overwrite changed the run it was to replace")
endif()
file(GLOB staged ${WORK_DIR}/run.*)
if(staged)
  message(FATAL_ERROR "a failed run left ${staged}")
endif()
# A folder of the user's own files is refused and left alone, also when a file has a run file's name and with
# --overwrite.
file(WRITE ${WORK_DIR}/mine/notes.txt "my notes")
file(WRITE ${WORK_DIR}/mine/config.json "{\"theme\": \"dark\"}")
folder_hash(${WORK_DIR}/mine before)
expect_error(foreign_folder 1 "--out mine holds files that are not a run's" train ${data} --out mine ${small_model})
expect_error(foreign_overwrite 1 "--out mine holds files that are not a run's" train ${data} --out mine ${small_model}
             --overwrite)
folder_hash(${WORK_DIR}/mine after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "train into a folder of other files changed it")
endif()

# Data errors name the file and the 1-based line; an empty training file says so.
file(WRITE ${WORK_DIR}/bad_label.jsonl "{\"text\": \"free money\", \"label\": \"spam\"}\n\n{\"text\": \"x\", \"label\": \"eggs\"}\n")
expect_error(valid_label 1 "bad_label.jsonl, line 3: unknown label \"eggs\" \\(known labels: \"ham\", \"spam\"\\)"
             train --train train.jsonl --valid bad_label.jsonl --out never ${small_model})
expect_error(test_label 1 "bad_label.jsonl, line 3: unknown label \"eggs\"" eval --model run --data bad_label.jsonl)
file(WRITE ${WORK_DIR}/empty.jsonl "")
expect_error(empty_train 1 "--train empty.jsonl holds no examples" train --train empty.jsonl --valid valid.jsonl
             --out never ${small_model})
expect_error(empty_test 1 "--data empty.jsonl holds no examples" eval --model run --data empty.jsonl)
expect_no_file(${WORK_DIR}/never)
# A training set of one class trains, with a warning.
file(STRINGS ${WORK_DIR}/train.jsonl spam_lines REGEX "\"spam\"")
list(JOIN spam_lines "\n" spam_text)
file(WRITE ${WORK_DIR}/spam_only.jsonl "${spam_text}\n")
run_step(one_class train --train spam_only.jsonl --valid spam_only.jsonl --out one_class --model bow --vocab-size 100
         --max-length 24 --epochs 1)
if(NOT err MATCHES "warning: every example of spam_only.jsonl has the label \"spam\"")
  message(FATAL_ERROR "a single-class training set trained without a warning:\n${err}")
endif()

# A worker thread's exception reaches the main thread as an error (a run whose config asks for more head tokens than
# fit, encoded on 4 threads).
file(COPY ${WORK_DIR}/run/ DESTINATION ${WORK_DIR}/bad_head)
file(READ ${WORK_DIR}/bad_head/config.json config)
string(REGEX REPLACE "\"head_tokens\": -?[0-9]+" "\"head_tokens\": 9999" config "${config}")
file(WRITE ${WORK_DIR}/bad_head/config.json "${config}")
expect_error(worker_exception 1 "head_tokens is 9999" eval --model bad_head --data test.jsonl --threads 4)

# A run folder whose files disagree is refused, naming them: a vocabulary shorter or longer than the model's
# embedding, more labels than the head has, a max_length past the position table.
foreach(kind shorter longer labels)
  file(REMOVE_RECURSE ${WORK_DIR}/mixed)
  file(COPY ${WORK_DIR}/run/ DESTINATION ${WORK_DIR}/mixed)
  file(STRINGS ${WORK_DIR}/run/vocab.txt vocab)
  list(LENGTH vocab n)
  if(kind STREQUAL "shorter")
    list(SUBLIST vocab 0 50 vocab)
    set(pattern "mixed/vocab.txt holds 50 tokens, but the model of .* embeds ${n}")
  elseif(kind STREQUAL "longer")
    list(APPEND vocab "extra")
    math(EXPR m "${n} + 1")
    set(pattern "mixed/vocab.txt holds ${m} tokens, but the model of .* embeds ${n}")
  else()
    file(READ ${WORK_DIR}/mixed/config.json config)
    string(REPLACE "\"spam\"" "\"spam\", \"eggs\"" config "${config}")
    string(REGEX REPLACE "\"max_length\": 24" "\"max_length\": 600" config "${config}")
    file(WRITE ${WORK_DIR}/mixed/config.json "${config}")
    set(pattern "mixed/config.json lists 3 labels, but .* has 2 outputs; .*max_length is 600, but the position table")
  endif()
  list(JOIN vocab "\n" vocab_text)
  file(WRITE ${WORK_DIR}/mixed/vocab.txt "${vocab_text}\n")
  expect_error(mixed_${kind} 1 "${pattern}" eval --model mixed --data test.jsonl)
endforeach()

# --max-length 0 keeps every token: the position table is sized to the longest text (here 602 tokens, more than a
# table of 512 would hold), and the run records that length.
string(REPEAT "free money winner " 200 long_text)
file(READ ${WORK_DIR}/train.jsonl train_text)
file(WRITE ${WORK_DIR}/train_long.jsonl "${train_text}{\"text\": \"${long_text}\", \"label\": \"spam\"}\n")
run_step(max_length_all train --train train_long.jsonl --valid valid.jsonl --out all ${small_net} --max-length 0
         --epochs 1)
file(READ ${WORK_DIR}/all/config.json config)
if(NOT config MATCHES "\"max_length\": 60[0-9]")
  message(FATAL_ERROR "--max-length 0: config.json should record the longest text's length (602):\n${config}")
endif()

# predict: a line longer than the run's max_length is truncated as in training, so every line of a batch gets its
# answer; a run of max_length 0 (all) written by earlier versions is truncated to its position table.
file(WRITE ${WORK_DIR}/long_lines.txt "free money winner click\n${long_text}${long_text}\nmeeting project report lunch\n")
file(COPY ${WORK_DIR}/run/ DESTINATION ${WORK_DIR}/run_all)
file(READ ${WORK_DIR}/run_all/config.json config)
string(REGEX REPLACE "\"max_length\": 24" "\"max_length\": 0" config "${config}")
file(WRITE ${WORK_DIR}/run_all/config.json "${config}")
set(run_step_input INPUT_FILE ${WORK_DIR}/long_lines.txt)
foreach(model run run_all all)
  run_step(predict_long predict --model ${model})
  if(NOT out MATCHES "^[a-z]+\t[01]\\.[0-9]+\n[a-z]+\t[01]\\.[0-9]+\n[a-z]+\t[01]\\.[0-9]+\n$")
    message(FATAL_ERROR "predict --model ${model} with a long line printed\n${out}\nexpected three answers")
  endif()
endforeach()
unset(run_step_input)
message(STATUS "text_classifier cli errors ok")

# BERT. pretrain: masked-LM on texts without labels (a JSON Lines file's "text" fields and a plain text file), the
# validation texts held out by the seed; it writes a Hugging Face BertForMaskedLM folder with its run in training/.
file(STRINGS ${WORK_DIR}/test.jsonl test_lines)
set(plain "")
foreach(line ${test_lines})
  string(REGEX REPLACE "^{\"text\": \"([^\"]*)\".*$" "\\1" text "${line}")
  string(APPEND plain "${text}\n\n")  # blank lines are skipped
endforeach()
file(WRITE ${WORK_DIR}/corpus.txt "${plain}")
set(tiny_bert --hidden 16 --layers 1 --heads 2 --intermediate 32 --max-length 32 --vocab-size 100 --batch-size 16)
run_step(pretrain pretrain --corpus train.jsonl corpus.txt --out bert ${tiny_bert} --epochs 2)
foreach(f config.json model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json training/config.json
          training/checkpoint.json training/metrics.csv training/curves.svg training/vocab.txt)
  expect_file(${WORK_DIR}/bert/${f})
endforeach()
expect_csv_rows(${WORK_DIR}/bert/training/metrics.csv 2)
file(READ ${WORK_DIR}/bert/config.json config)
if(NOT config MATCHES "\"model_type\": \"bert\"" OR NOT config MATCHES "\"architectures\": \\[\n *\"BertForMaskedLM\"")
  message(FATAL_ERROR "pretrain: config.json is not a BertForMaskedLM's:\n${config}")
endif()
if(NOT err MATCHES "data: 114 training, 6 validation texts" OR
   NOT err MATCHES "epoch 2: train loss [0-9.]+ acc [0-9.]+ ppl [0-9.]+ \\| valid loss [0-9.]+ acc [0-9.]+ ppl")
  message(FATAL_ERROR "pretrain: stderr lacks the data or the epoch's masked-LM loss and accuracy:\n${err}")
endif()
expect_error(pretrain_again 1 "--out bert holds a pretraining run" pretrain --corpus train.jsonl corpus.txt
             --out bert ${tiny_bert} --epochs 2)
run_step(pretrain_resume pretrain --corpus train.jsonl corpus.txt --out bert ${tiny_bert} --epochs 3 --resume
         --allow-change epochs)
expect_csv_rows(${WORK_DIR}/bert/training/metrics.csv 3)
if(NOT err MATCHES "resuming at epoch 3 of 3" OR NOT err MATCHES "tokenizer: [0-9]+ WordPiece tokens \\(the run's\\)")
  message(FATAL_ERROR "pretrain --resume did not continue the run:\n${err}")
endif()
run_step(pretrain_whole_word pretrain --corpus corpus.txt --valid valid.jsonl --out bert_ww ${tiny_bert} --epochs 1
         --whole-word --mask-probability 0.3 --truncation head_tail --head-tokens 4)
expect_file(${WORK_DIR}/bert_ww/model.safetensors)
file(READ ${WORK_DIR}/bert_ww/tokenizer_config.json tokenizer_config)
if(NOT tokenizer_config MATCHES "\"eigenformer_truncation\": \"head_tail\"" OR
   NOT tokenizer_config MATCHES "\"eigenformer_head_tokens\": 4")
  message(FATAL_ERROR "pretrain --truncation head_tail: tokenizer_config.json does not record it:\n${tokenizer_config}")
endif()
expect_error(pretrain_head_tokens 1 "--head-tokens 31: expected -1 \\(a quarter\\) or 0 to 30" pretrain
             --corpus corpus.txt --out never ${tiny_bert} --truncation head_tail --head-tokens 31)

# train --init: the pretrained folder fine-tuned; the run folder is a run's (eval, predict), with BERT's tokenizer.
run_step(train_init train --init bert --train train.jsonl --valid valid.jsonl --out bert_run --epochs 8 --batch-size 8
         --lr 3e-3 --warmup 0 --dropout 0)
if(NOT err MATCHES "init: bert: BertForSequenceClassification; newly initialized: bert.pooler.dense.weight, bert.pooler.dense.bias, classifier.weight, classifier.bias; not used: cls.predictions.bias")
  message(FATAL_ERROR "train --init did not report the new head and the unused masked-LM head:\n${err}")
endif()
foreach(f config.json model.safetensors vocab.txt tokenizer_config.json metrics.csv curves.svg)
  expect_file(${WORK_DIR}/bert_run/${f})
endforeach()
expect_csv_rows(${WORK_DIR}/bert_run/metrics.csv 8)
file(READ ${WORK_DIR}/bert_run/config.json config)
if(NOT config MATCHES "\"model_type\": \"bert\"" OR NOT config MATCHES "\"max_length\": 32")
  message(FATAL_ERROR "train --init: config.json lacks model_type bert or max_length 32 (the position table):\n${config}")
endif()
run_step(eval_init eval --model bert_run --data test.jsonl)
expect_accuracy("${out}" "eval (train --init of the pretrained folder)")
# The truncation pretrain recorded is fine-tuning's unless --truncation or --head-tokens is given.
run_step(train_init_recorded train --init bert_ww --train train.jsonl --valid valid.jsonl --out bert_ww_run
         --epochs 1 --batch-size 16)
file(READ ${WORK_DIR}/bert_ww_run/config.json config)
if(NOT config MATCHES "\"head_tokens\": 4," OR NOT config MATCHES "\"truncation\": \"head_tail\"")
  message(FATAL_ERROR "train --init bert_ww: config.json lacks the recorded head_tail truncation of 4 tokens:\n${config}")
endif()
run_step(train_init_given train --init bert_ww --train train.jsonl --valid valid.jsonl --out bert_ww_head
         --epochs 1 --batch-size 16 --truncation head)
file(READ ${WORK_DIR}/bert_ww_head/config.json config)
if(NOT config MATCHES "\"truncation\": \"head\"")
  message(FATAL_ERROR "train --init bert_ww --truncation head: config.json lacks truncation head:\n${config}")
endif()
expect_error(train_init_recorded_too_long 1 "head tokens 4 \\(recorded in bert_ww/tokenizer_config.json\\): expected -1 \\(a quarter\\) or 0 to 2"
             train --init bert_ww --train train.jsonl --valid valid.jsonl --out never --max-length 4)

# The Hugging Face fixtures: a BertForMaskedLM (a new pooler and head) and a classifier of other labels.
run_step(init_mlm train --init ${HF_DIR}/bert-mlm ${data} --out mlm_run --epochs 1 --batch-size 8)
if(NOT err MATCHES "newly initialized: bert.pooler.dense.weight, bert.pooler.dense.bias, classifier.weight, classifier.bias; not used: cls.predictions")
  message(FATAL_ERROR "train --init bert-mlm: the load report is not the expected one:\n${err}")
endif()
run_step(eval_mlm eval --model mlm_run --data test.jsonl)
run_step(init_cls train --init ${HF_DIR}/bert-cls ${data} --out cls_run --epochs 1 --batch-size 8)
if(NOT err MATCHES "newly initialized: classifier.weight, classifier.bias; the folder's classifier \\(labels negative, neutral, positive\\) is replaced")
  message(FATAL_ERROR "train --init bert-cls: the load report is not the expected one:\n${err}")
endif()

# LoRA: adapters of rank 2 on query and value (2 layers x 2 x (2 x 32 + 32 x 2)) and the classifier (32 x 2 + 2)
# trained; the PEFT adapter folder beside the run; eval and predict merge the adapters.
run_step(lora train --init ${HF_DIR}/bert-cls ${data} --out lora_run --epochs 1 --batch-size 8 --lora-rank 2)
if(NOT err MATCHES "lora: rank 2, alpha 4, dropout 0: adapters on 4 Linears \\(query, value\\); trained in full: classifier; trainable parameters: 578 of 20556")
  message(FATAL_ERROR "train --lora-rank 2: the trainable parameter count is not 578 of 20556:\n${err}")
endif()
foreach(f adapter/adapter_config.json adapter/adapter_model.safetensors model.safetensors)
  expect_file(${WORK_DIR}/lora_run/${f})
endforeach()
file(READ ${WORK_DIR}/lora_run/config.json config)
file(READ ${WORK_DIR}/lora_run/adapter/adapter_config.json adapter)
if(NOT config MATCHES "\"lora\": {" OR NOT adapter MATCHES "\"peft_type\": \"LORA\"" OR NOT adapter MATCHES "\"r\": 2")
  message(FATAL_ERROR "train --lora-rank: config.json or the adapter's config lacks the LoRA options:\n${config}\n${adapter}")
endif()
run_step(eval_lora eval --model lora_run --data test.jsonl)

# predict --logits of a Hugging Face classifier folder: row 2 of tests/reference/hf/bert_expected.safetensors'
# cls.logits ("[CLS] the big red [MASK] [SEP]", PyTorch in float64), within float32 rounding.
file(WRITE ${WORK_DIR}/fixture_text.txt "the big red [MASK]\n")
set(run_step_input INPUT_FILE ${WORK_DIR}/fixture_text.txt)
run_step(predict_hf_logits predict --model ${HF_DIR}/bert-cls --logits)
string(STRIP "${out}" logits)
string(REPLACE " " ";" logits "${logits}")
set(expected_logits -0.6301308218511444 1.509844330795591 0.6405753238026989)
list(LENGTH logits n)
if(NOT n EQUAL 3)
  message(FATAL_ERROR "predict --logits of bert-cls printed \"${out}\", expected 3 logits")
endif()
# |got - want| < 2e-5, with the bounds written out (CMake has no floating-point arithmetic).
list(GET logits 0 l0)
list(GET logits 1 l1)
list(GET logits 2 l2)
if(NOT (l0 GREATER -0.630151 AND l0 LESS -0.630111 AND l1 GREATER 1.509824 AND l1 LESS 1.509864 AND
        l2 GREATER 0.640555 AND l2 LESS 0.640595))
  message(FATAL_ERROR "predict --logits of bert-cls printed ${out}expected ${expected_logits} (PyTorch, float64)")
endif()
run_step(predict_hf predict --model ${HF_DIR}/bert-cls)
if(NOT out MATCHES "^neutral\t0\\.[0-9]+\n$")
  message(FATAL_ERROR "predict --model bert-cls printed \"${out}\", expected the label of id2label's largest logit")
endif()

# export: the LoRA run (adapters merged) as a Hugging Face folder; predict on it prints what predict on the run
# prints, and eval reads it too.
run_step(export export --model lora_run --out lora_hf)
foreach(f config.json model.safetensors vocab.txt tokenizer_config.json special_tokens_map.json)
  expect_file(${WORK_DIR}/lora_hf/${f})
endforeach()
file(READ ${WORK_DIR}/lora_hf/config.json config)
if(NOT config MATCHES "BertForSequenceClassification" OR NOT config MATCHES "\"id2label\"" OR config MATCHES "lora")
  message(FATAL_ERROR "export: config.json is not a BertForSequenceClassification's with id2label:\n${config}")
endif()
file(WRITE ${WORK_DIR}/mixed_texts.txt "free money winner click offer cash prize\nthe cat sat on the mat\n"
     "a dog ran to the park and then it was fun\n${long_text}\n")
set(run_step_input INPUT_FILE ${WORK_DIR}/mixed_texts.txt)
foreach(flag "" "--logits")
  run_step(predict_run predict --model lora_run ${flag})
  set(from_run "${out}")
  run_step(predict_export predict --model lora_hf ${flag})
  if(NOT out STREQUAL from_run OR from_run STREQUAL "")
    message(FATAL_ERROR "predict ${flag}: the export printed\n${out}\nthe run printed\n${from_run}")
  endif()
endforeach()
unset(run_step_input)
run_step(eval_export eval --model lora_hf --data test.jsonl)

# BERT errors name the option and the folder.
file(MAKE_DIRECTORY ${WORK_DIR}/no_config)
file(WRITE ${WORK_DIR}/no_config/vocab.txt "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
expect_error(init_no_config 1 "--init no_config holds no config.json" train --init no_config ${data} --out never)
expect_error(init_gpt2 1 "--init .*gpt2: config.json has model_type \"gpt2\", expected \"bert\""
             train --init ${HF_DIR}/gpt2 ${data} --out never)
expect_error(lora_without_init 2 "--lora-rank requires --init" train ${data} --out never --lora-rank 2)
expect_error(init_size 2 "--d-model: does not apply with --init" train --init bert ${data} --out never --d-model 32)
file(WRITE ${WORK_DIR}/empty.txt "\n  \n")
expect_error(pretrain_empty 1 "--corpus empty.txt holds no text" pretrain --corpus corpus.txt empty.txt --out never
             ${tiny_bert})
expect_error(predict_mlm 1 "bert-mlm is not a sequence classifier: its checkpoint lacks .*classifier.weight"
             predict --model ${HF_DIR}/bert-mlm)
expect_error(eval_pretraining_run 1 "is a masked-LM pretraining run" eval --model bert/training --data test.jsonl)
expect_error(export_transformer 1 "--model run is a transformer run: export writes bert runs"
             export --model run --out never)
expect_no_file(${WORK_DIR}/never)
message(STATUS "text_classifier cli bert ok")
