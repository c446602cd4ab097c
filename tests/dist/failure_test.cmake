# Two ranks, rank 1 throws inside training: the run must end (not hang), fail, and show rank 1's error.
execute_process(COMMAND ${MPIEXEC} -n 2 ${PROGRAM} --fail-on-rank 1 RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err TIMEOUT 100)
if(rc MATCHES "timeout")
  message(FATAL_ERROR "the ranks still run after 100 s: a failure on one rank left the others waiting")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a failure, the run exited 0:\n${out}\n${err}")
endif()
if(NOT err MATCHES "rank 1: error: rank 1 failed on purpose")
  message(FATAL_ERROR "the failing rank's error is missing from the output (exit ${rc}):\n${out}\n${err}")
endif()
message(STATUS "exit ${rc}; every rank ended")
