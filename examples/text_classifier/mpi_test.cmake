# text_classifier train under mpirun: 2 ranks with --batch-size 8 train as one process with --batch-size 16 (the
# same test accuracy and F1), rank 0 alone writes the run folder, --resume continues it on 2 ranks. Run by ctest:
#   cmake -DTEXT_CLASSIFIER=<path> -DMPIEXEC=<mpiexec> -DWORK_DIR=<scratch folder> -P mpi_test.cmake
cmake_minimum_required(VERSION 3.16)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
include(${CMAKE_CURRENT_LIST_DIR}/test_corpus.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/../same_losses.cmake)
make_corpus(${WORK_DIR}/train.jsonl 96 1)
make_corpus(${WORK_DIR}/valid.jsonl 24 2)
make_corpus(${WORK_DIR}/test.jsonl 24 3)
set(M --vocab-size 300 --max-length 64 --d-model 32 --heads 2 --ffn 64 --layers 1 --seed 3 --threads 1)

function(run name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err WORKING_DIRECTORY ${WORK_DIR})
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

function(test_scores run_dir out_var)
  run("eval ${run_dir}" ${TEXT_CLASSIFIER} eval --model ${run_dir} --data test.jsonl --threads 1)
  string(REGEX MATCH "macro-F1 [0-9.]+" f1 "${out}")
  string(REGEX MATCH "accuracy [0-9.]+" accuracy "${out}")
  set(${out_var} "${f1} ${accuracy}" PARENT_SCOPE)
endfunction()

run("one process" ${TEXT_CLASSIFIER} train --train train.jsonl --valid valid.jsonl --out one ${M} --epochs 4
    --batch-size 16)
run("two ranks" ${MPIEXEC} -n 2 ${TEXT_CLASSIFIER} train --train train.jsonl --valid valid.jsonl --out two ${M}
    --epochs 4 --batch-size 8)
if(NOT err MATCHES "epoch 4/4")
  message(FATAL_ERROR "two ranks: no progress from rank 0:\n${err}")
endif()
string(REGEX MATCHALL "data: [0-9]+ training" data_lines "${err}")
list(LENGTH data_lines printed)
if(NOT printed EQUAL 1)
  message(FATAL_ERROR "two ranks: expected rank 0 alone to print, got ${printed} data lines:\n${err}")
endif()
expect_same_losses(${WORK_DIR}/one/metrics.csv ${WORK_DIR}/two/metrics.csv 4)
test_scores(one one_scores)
test_scores(two two_scores)
if(NOT one_scores STREQUAL two_scores OR one_scores STREQUAL " ")
  message(FATAL_ERROR "two ranks scored \"${two_scores}\", one process \"${one_scores}\"")
endif()
file(GLOB strays ${WORK_DIR}/two.*)
if(strays)
  message(FATAL_ERROR "staging folders left beside the run: ${strays}")
endif()

# Resume on 2 ranks: 2 epochs, then 2 more.
run("two ranks, 2 epochs" ${MPIEXEC} -n 2 ${TEXT_CLASSIFIER} train --train train.jsonl --valid valid.jsonl
    --out resumed ${M} --epochs 2 --batch-size 8)
run("two ranks, resumed" ${MPIEXEC} -n 2 ${TEXT_CLASSIFIER} train --train train.jsonl --valid valid.jsonl
    --out resumed ${M} --epochs 4 --batch-size 8 --resume --allow-change epochs)
file(STRINGS ${WORK_DIR}/resumed/metrics.csv rows)
list(LENGTH rows n)
if(NOT n EQUAL 5)
  message(FATAL_ERROR "resumed/metrics.csv holds ${n} lines, expected a header and 4 epochs")
endif()
