# Configures and builds a CMake project with two parallel jobs (ctest --build-and-test builds one file at a time).
#   cmake -DSOURCE_DIR=<dir> -DBINARY_DIR=<dir> -DGENERATOR=<name> -DCXX_COMPILER=<path> -DBUILD_TYPE=<type>
#         -DEIGENFORMER_SOURCE_DIR=<dir> -P build_project.cmake
foreach(var SOURCE_DIR BINARY_DIR GENERATOR CXX_COMPILER BUILD_TYPE EIGENFORMER_SOURCE_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "build_project: pass -D${var}=...")
  endif()
endforeach()
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
          -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DEIGENFORMER_SOURCE_DIR=${EIGENFORMER_SOURCE_DIR}
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "build_project: configuring ${SOURCE_DIR} in ${BINARY_DIR} failed (${result})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} --parallel 2 RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "build_project: building ${BINARY_DIR} failed (${result})")
endif()
