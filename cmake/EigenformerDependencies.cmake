# Dependency lookups shared by the build tree and the installed eigenformerConfig.cmake.
include_guard(GLOBAL)

# Eigen 3.4 or later. find_package(Eigen3 3.4) rejects Eigen 5 (its version file demands the same major
# version), so ask for any version and check the lower bound here.
macro(eigenformer_find_eigen)
  if(NOT TARGET Eigen3::Eigen)
    find_package(Eigen3 NO_MODULE QUIET)
    if(NOT Eigen3_FOUND)
      message(FATAL_ERROR "eigenformer needs Eigen 3.4 or later (Debian/Ubuntu: apt-get install libeigen3-dev), "
                          "or set Eigen3_DIR to the folder holding Eigen3Config.cmake")
    endif()
    if(DEFINED Eigen3_VERSION AND Eigen3_VERSION VERSION_LESS 3.4)
      message(FATAL_ERROR "eigenformer needs Eigen 3.4 or later, found ${Eigen3_VERSION} in ${Eigen3_DIR}")
    endif()
  endif()
endmacro()

# nlohmann/json 3 for the safetensors reader and writer (optional for the rest of the library).
macro(eigenformer_find_json)
  if(NOT TARGET nlohmann_json::nlohmann_json)
    find_package(nlohmann_json 3 QUIET)
  endif()
endmacro()

# utf8proc for the text tokenizers (Unicode categories, case mapping, NFD; optional for the rest of the library).
# It is a compiled library that ships no CMake package in Debian (apt-get install libutf8proc-dev), so look for the
# header and the library and wrap them in an imported target. GLOBAL: the eigenformer target of an
# add_subdirectory build names it in directories above this one.
macro(eigenformer_find_utf8proc)
  if(NOT TARGET eigenformer::utf8proc)
    find_path(EIGENFORMER_UTF8PROC_INCLUDE_DIR utf8proc.h)
    find_library(EIGENFORMER_UTF8PROC_LIBRARY NAMES utf8proc)
    if(EIGENFORMER_UTF8PROC_INCLUDE_DIR AND EIGENFORMER_UTF8PROC_LIBRARY)
      add_library(eigenformer::utf8proc UNKNOWN IMPORTED GLOBAL)
      set_target_properties(eigenformer::utf8proc PROPERTIES
        IMPORTED_LOCATION "${EIGENFORMER_UTF8PROC_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${EIGENFORMER_UTF8PROC_INCLUDE_DIR}")
    endif()
  endif()
endmacro()

# OpenBLAS for the optional EIGEN_USE_BLAS backend (Debian/Ubuntu: apt-get install libopenblas-dev). Defines the
# BLAS::BLAS target when found (FindBLAS makes it from CMake 3.18 on; older CMake gets an equivalent one here).
macro(eigenformer_find_openblas)
  if(NOT TARGET BLAS::BLAS)
    set(eigenformer_saved_bla_vendor "${BLA_VENDOR}")
    set(BLA_VENDOR OpenBLAS)
    find_package(BLAS QUIET)
    set(BLA_VENDOR "${eigenformer_saved_bla_vendor}")
    if(BLAS_FOUND AND NOT TARGET BLAS::BLAS)
      add_library(BLAS::BLAS INTERFACE IMPORTED GLOBAL)
      set_target_properties(BLAS::BLAS PROPERTIES INTERFACE_LINK_LIBRARIES "${BLAS_LIBRARIES}")
    endif()
  endif()
endmacro()
