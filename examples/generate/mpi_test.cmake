# train_gpt under mpirun: 2 ranks with --batch-size 4 train as one process with --batch-size 8 (every epoch's
# losses within 1e-5, with dropout), rank 0 alone prints and writes the run folder. Run by ctest:
#   cmake -DTRAIN_GPT=<path> -DMPIEXEC=<mpiexec> -DWORK_DIR=<scratch folder> -P mpi_test.cmake
cmake_minimum_required(VERSION 3.16)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/test_corpus.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/../same_losses.cmake)
make_fortunes(${WORK_DIR}/corpus)
set(M --fortunes corpus --vocab-size 300 --block-size 16 --layers 1 --embd 16 --heads 2 --dropout 0.1 --lr 3e-3
      --valid-fraction 0.2 --sample-tokens 4 --threads 1 --epochs 3)

function(run name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err WORKING_DIRECTORY ${WORK_DIR})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

run("one process" ${TRAIN_GPT} ${M} --out one --batch-size 8)
run("two ranks" ${MPIEXEC} -n 2 ${TRAIN_GPT} ${M} --out two --batch-size 4)
string(REGEX MATCHALL "corpus: [0-9]+ texts" corpus_lines "${err}")
list(LENGTH corpus_lines printed)
if(NOT printed EQUAL 1 OR NOT err MATCHES "epoch 3")
  message(FATAL_ERROR "two ranks: expected rank 0 alone to print its progress, got:\n${err}")
endif()
if(NOT EXISTS ${WORK_DIR}/two/hf/model.safetensors)
  message(FATAL_ERROR "two ranks: rank 0 did not write two/hf")
endif()
expect_same_losses(${WORK_DIR}/one/metrics.csv ${WORK_DIR}/two/metrics.csv 3)
