# The text_classifier command line on a tiny generated corpus: train (transformer and bow), resume, eval,
# predict and plot, checking their files and outputs. Run by ctest:
#   cmake -DTEXT_CLASSIFIER=<path to text_classifier> -DWORK_DIR=<scratch folder> -P cli_test.cmake
cmake_minimum_required(VERSION 3.16)
if(NOT TEXT_CLASSIFIER OR NOT WORK_DIR)
  message(FATAL_ERROR "cli_test.cmake: set TEXT_CLASSIFIER and WORK_DIR")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# Texts of 8 words: spam draws from one word list, ham from another, both add 2 neutral words. string(RANDOM) with a
# fixed seed per draw makes the corpus the same on every run.
set(spam_words free money winner click offer cash prize urgent bonus deal)
set(ham_words meeting project report lunch tomorrow team schedule review code notes)
set(neutral_words the and please today with for)
function(make_corpus path count seed)
  set(lines "")
  foreach(i RANGE 1 ${count})
    math(EXPR s "${seed} * 1000 + ${i}")
    string(RANDOM LENGTH 1 ALPHABET "01" RANDOM_SEED ${s} label_digit)
    if(label_digit STREQUAL "1")
      set(label spam)
      set(words ${spam_words})
    else()
      set(label ham)
      set(words ${ham_words})
    endif()
    set(text "")
    foreach(k RANGE 1 8)
      math(EXPR s2 "${s} * 31 + ${k}")
      string(RANDOM LENGTH 1 ALPHABET "0123456789" RANDOM_SEED ${s2} w)
      list(GET words ${w} word)
      string(APPEND text "${word} ")
      if(k EQUAL 3 OR k EQUAL 6)
        string(RANDOM LENGTH 1 ALPHABET "012345" RANDOM_SEED ${s2}7 n)
        list(GET neutral_words ${n} word)
        string(APPEND text "${word} ")
      endif()
    endforeach()
    string(STRIP "${text}" text)
    string(APPEND lines "{\"text\": \"${text}\", \"label\": \"${label}\"}\n")
  endforeach()
  file(WRITE ${path} "${lines}")
endfunction()
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

set(small_model --vocab-size 100 --max-length 24 --d-model 16 --heads 2 --ffn 32 --batch-size 8 --lr 1e-2)

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
run_step(resume train --train train.jsonl --valid valid.jsonl --out run ${small_model} --epochs 3 --resume
         --allow-change epochs)
expect_csv_rows(${WORK_DIR}/run/metrics.csv 3)

run_step(eval eval --model run --data test.jsonl)
expect_accuracy("${out}" "eval (transformer)")

file(WRITE ${WORK_DIR}/texts.txt "free money winner click offer cash prize\nmeeting project report lunch tomorrow team\n")
set(run_step_input INPUT_FILE ${WORK_DIR}/texts.txt)
run_step(predict predict --model run)
unset(run_step_input)
if(NOT out MATCHES "^spam\t[01]\\.[0-9][0-9][0-9][0-9]\nham\t[01]\\.[0-9][0-9][0-9][0-9]\n$")
  message(FATAL_ERROR "predict printed\n${out}\nexpected \"spam<TAB>p\" then \"ham<TAB>p\"")
endif()

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

# Bad options end with a clear error (exit 1), also when the tokenizer rejects them on a worker thread.
execute_process(COMMAND ${TEXT_CLASSIFIER} train --train train.jsonl --valid valid.jsonl --out bad --head-tokens 9999
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err WORKING_DIRECTORY ${WORK_DIR})
if(NOT rc EQUAL 1 OR NOT err MATCHES "head_tokens is 9999")
  message(FATAL_ERROR "train --head-tokens 9999: exit ${rc}, expected 1 and an error naming head_tokens:\n${err}")
endif()
