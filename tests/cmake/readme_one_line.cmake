# Runs the README's one-line compile of the quick start as a reader would: the first ```cpp block saved as
# quickstart.cpp, then the README's `g++ -std=c++17 ...` line, run by the shell, in a scratch folder.
#   cmake -DSOURCE_DIR=<eigenformer> -DWORK_DIR=<scratch> -P readme_one_line.cmake
if(NOT DEFINED SOURCE_DIR OR NOT DEFINED WORK_DIR)
  message(FATAL_ERROR "readme_one_line: pass -DSOURCE_DIR=<eigenformer> -DWORK_DIR=<scratch folder>")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} -DREADME=${SOURCE_DIR}/README.md -DOUTPUT=${WORK_DIR}/quickstart.cpp
                        -P ${SOURCE_DIR}/tests/cmake/extract_quickstart.cmake RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readme_one_line: could not extract the quick start")
endif()
file(STRINGS "${SOURCE_DIR}/README.md" lines REGEX "^g\\+\\+ -std=c\\+\\+17 .*quickstart\\.cpp")
list(LENGTH lines count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "readme_one_line: expected one line starting with \"g++ -std=c++17\" in the README, found ${count}")
endif()
# The line says -I include, relative to the repository: point it at this tree.
string(REPLACE " -I include " " -I ${SOURCE_DIR}/include " command "${lines}")
execute_process(COMMAND sh -c "${command}" WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "y = 98.7")
  message(FATAL_ERROR "readme_one_line: `${command}` failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "readme one-line compile ok:\n${out}")
