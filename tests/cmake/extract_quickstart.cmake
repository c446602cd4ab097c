# Writes the first ```cpp block of a Markdown file to a source file, so that a test compiles the README's quick
# start exactly as a reader copies it.
#   cmake -DREADME=<path/README.md> -DOUTPUT=<path/quickstart.cpp> -P extract_quickstart.cmake
if(NOT DEFINED README OR NOT DEFINED OUTPUT)
  message(FATAL_ERROR "extract_quickstart: pass -DREADME=<README.md> -DOUTPUT=<file.cpp>")
endif()
if(NOT EXISTS "${README}")
  message(FATAL_ERROR "extract_quickstart: README is ${README}, which does not exist")
endif()

# Plain string search, not a CMake list of lines: list splitting mangles ';' and unbalanced '[' in C++ code.
file(READ "${README}" text)
string(REPLACE "\r\n" "\n" text "${text}")
set(text "\n${text}")
string(REGEX MATCH "\n```[ ]*(cpp|c\\+\\+)[ ]*\n" fence "${text}")
if(NOT fence)
  message(FATAL_ERROR "extract_quickstart: ${README} has no ```cpp code block")
endif()
string(FIND "${text}" "${fence}" begin)
string(LENGTH "${fence}" fence_length)
math(EXPR begin "${begin} + ${fence_length}")
string(SUBSTRING "${text}" ${begin} -1 rest)
string(FIND "${rest}" "\n```" end)
if(end EQUAL -1)
  message(FATAL_ERROR "extract_quickstart: the first ```cpp block of ${README} is never closed")
endif()
string(SUBSTRING "${rest}" 0 ${end} code)
if(NOT code MATCHES "int main")
  message(FATAL_ERROR "extract_quickstart: the first ```cpp block of ${README} has no main(); it must be a "
                      "complete program")
endif()

file(WRITE "${OUTPUT}.tmp" "${code}\n")
# Rewrite only on change, so an unchanged README does not trigger a rebuild.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
