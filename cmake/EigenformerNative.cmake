# -march=native for the programs this project builds and runs on the same machine: the benchmarks and the example
# programs. The eigenformer target never carries it, so consumers choose their own target architecture; the unit
# tests, the README programs and the consumer projects build as a user's program would, without it.
option(EIGENFORMER_NATIVE "Compile the benchmarks and example programs with -march=native" ON)

set(eigenformer_native_flags)
if(EIGENFORMER_NATIVE AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  include(CheckCXXCompilerFlag)
  check_cxx_compiler_flag(-march=native EIGENFORMER_HAS_MARCH_NATIVE)
  if(EIGENFORMER_HAS_MARCH_NATIVE)
    set(eigenformer_native_flags -march=native)
    # GCC 12's AVX-512 intrinsics pass a deliberately undefined register (`__m512 __Y = __Y;`) as the merge source
    # of unmasked operations, and once Eigen's packet math (pexp, pmax) is inlined into a function GCC 12 reports
    # it as "used uninitialized" from inside avx512fintrin.h (GCC bug 105593, fixed in GCC 13). Under
    # -march=native on an AVX-512 machine that is dozens of warnings about a system header: silence those two.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12 AND
       CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      list(APPEND eigenformer_native_flags -Wno-uninitialized -Wno-maybe-uninitialized)
    endif()
  endif()
endif()

# eigenformer_native_options(<target>): adds the flags above to a program (after its own warning options).
function(eigenformer_native_options target)
  if(eigenformer_native_flags)
    target_compile_options(${target} PRIVATE ${eigenformer_native_flags})
  endif()
endfunction()
