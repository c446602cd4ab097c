# The train_gpt and generate command lines on a tiny generated corpus: train for two epochs, resume for a third,
# read the Hugging Face folder back with generate (text, ids, a batch, stop strings), and refuse bad input with a
# message and exit status 1. Run by ctest:
#   cmake -DGENERATE=<generate> -DTRAIN_GPT=<train_gpt> -DWORK_DIR=<scratch> -DFIXTURE=<tests/reference/hf/gpt2>
#         -P cli_test.cmake
cmake_minimum_required(VERSION 3.16)
if(NOT GENERATE OR NOT TRAIN_GPT OR NOT WORK_DIR OR NOT FIXTURE)
  message(FATAL_ERROR "cli_test.cmake: set GENERATE, TRAIN_GPT, WORK_DIR and FIXTURE")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

include(${CMAKE_CURRENT_LIST_DIR}/test_corpus.cmake)
make_fortunes(${WORK_DIR}/corpus)

function(run_step name program)
  execute_process(COMMAND ${program} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  WORKING_DIRECTORY ${WORK_DIR})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

function(expect_failure name expected_words program)
  execute_process(COMMAND ${program} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  WORKING_DIRECTORY ${WORK_DIR})
  if(rc EQUAL 0)
    message(FATAL_ERROR "${name} succeeded, expected a failure:\n${out}\n${err}")
  endif()
  foreach(w IN LISTS expected_words)
    string(FIND "${err}" "${w}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${name}: the message lacks \"${w}\":\n${err}")
    endif()
  endforeach()
endfunction()

set(train_args --fortunes corpus --out run --vocab-size 300 --block-size 16 --layers 1 --embd 16 --heads 2
               --batch-size 8 --lr 3e-3 --valid-fraction 0.2 --sample-tokens 8 --sample-prompt "the cat" --threads 1)
run_step("train_gpt train" ${TRAIN_GPT} ${train_args} --epochs 2)
foreach(f config.json model.safetensors metrics.csv vocab.json merges.txt hf/config.json hf/model.safetensors
          hf/vocab.json hf/merges.txt)
  if(NOT EXISTS ${WORK_DIR}/run/${f})
    message(FATAL_ERROR "train_gpt did not write run/${f}")
  endif()
endforeach()
if(NOT err MATCHES "sample \\| the cat" OR NOT out MATCHES "valid_perplexity [0-9.]+")
  message(FATAL_ERROR "train_gpt printed no samples or no perplexity:\n${out}\n${err}")
endif()
run_step("train_gpt resume" ${TRAIN_GPT} ${train_args} --epochs 3 --resume --allow-change epochs)
if(NOT err MATCHES "resuming at epoch 3")
  message(FATAL_ERROR "train_gpt --resume did not resume at epoch 3:\n${err}")
endif()

run_step("generate text" ${GENERATE} --model run/hf --prompt "the dog" --greedy --max-new-tokens 12)
if(NOT out MATCHES "^the dog")
  message(FATAL_ERROR "generate did not print the prompt and its continuation:\n${out}")
endif()
run_step("generate ids" ${GENERATE} --model run/hf --prompt-ids "5 6 7" --greedy --max-new-tokens 5 --print-ids)
if(NOT out MATCHES "^[0-9]+( [0-9]+)*\n$")
  message(FATAL_ERROR "generate --print-ids did not print one line of ids:\n${out}")
endif()
run_step("generate batch" ${GENERATE} --model run/hf --prompt "the" --prompt "a cat sat" --max-new-tokens 6
         --temperature 0.7 --top-k 20 --top-p 0.9 --repetition-penalty 1.2 --seed 3 --stop "\\n" --stats)
if(NOT out MATCHES "=== 1 ===\nthe" OR NOT out MATCHES "=== 2 ===\na cat sat" OR NOT err MATCHES "tokens/s")
  message(FATAL_ERROR "generate with two prompts did not print both:\n${out}\n${err}")
endif()
run_step("generate unconditional" ${GENERATE} --model run/hf --prompt "" --max-new-tokens 4 --seed 1)

expect_failure("negative temperature" "temperature is -1" ${GENERATE} --model run/hf --prompt "x" --temperature -1)
expect_failure("top-p 0" "top_p is 0" ${GENERATE} --model run/hf --prompt "x" --top-p 0)
expect_failure("id out of range" "out of range" ${GENERATE} --model ${FIXTURE} --prompt-ids "1 101" --print-ids)
expect_failure("bad id" "not a token id" ${GENERATE} --model ${FIXTURE} --prompt-ids "1 x2")
expect_failure("too long" "longer than the model's context" ${GENERATE} --model run/hf --prompt-ids
               "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17" --print-ids)
file(WRITE ${WORK_DIR}/broken/config.json "{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_head\": 4, \"n_layer\": 2, \"vocab_size\": 101, \"n_positions\": 64}")
file(COPY ${FIXTURE}/model.safetensors DESTINATION ${WORK_DIR}/broken)
expect_failure("folder not matching its config" "does not fit the model;(101, 24)" ${GENERATE} --model broken
               --prompt-ids "1" --print-ids)
expect_failure("no corpus" "no text" ${TRAIN_GPT} --out run2 --text /dev/null)
message(STATUS "generate_cli: every step passed")
