# finetune_demo's command line: an unknown option or a missing value is a usage error (exit 2) naming it, -h and
# --help print the usage (exit 0). Run by ctest:
#   cmake -DFINETUNE_DEMO=<path to finetune_demo> -P finetune_demo_usage.cmake
cmake_minimum_required(VERSION 3.16)
if(NOT FINETUNE_DEMO)
  message(FATAL_ERROR "finetune_demo_usage.cmake: set FINETUNE_DEMO")
endif()

function(expect_exit rc pattern)
  execute_process(COMMAND ${FINETUNE_DEMO} ${ARGN} RESULT_VARIABLE got OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT got EQUAL rc OR NOT "${out}${err}" MATCHES "${pattern}")
    message(FATAL_ERROR "finetune_demo ${ARGN}: exit ${got}, expected ${rc} and output matching \"${pattern}\":\n"
                        "${out}${err}")
  endif()
endfunction()

expect_exit(2 "unknown option --frob\nusage: finetune_demo" --frob)
expect_exit(2 "missing value after --epochs\nusage: finetune_demo" --epochs)
expect_exit(2 "bad value for --epochs: x" --epochs x)
expect_exit(0 "usage: finetune_demo" -h)
expect_exit(0 "usage: finetune_demo" --help)
message(STATUS "finetune_demo usage ok")
