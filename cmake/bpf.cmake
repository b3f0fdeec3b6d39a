# bpf_object(NAME SOURCE): compiles bpf/SOURCE (or SOURCE, if absolute) into NAME.bpf.o with clang and
# generates NAME.skel.h with bpftool. Defines the INTERFACE target NAME_skel
# that puts the skeleton on the include path. All BPF flags live here.
# One include root for the BPF side, bpf/: "lib/parse.h" (what every program shares),
# "xdp/filter.h", "tc/tc.h", ... (a feature's own headers, beside its programs); the ABI
# headers shared with C++ as "bpfgate/abi/<feature>.h" from include/.
find_program(BPF_CLANG NAMES clang-19 clang-18 clang-17 clang-16 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND gcc -dumpmachine OUTPUT_VARIABLE BPF_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(BPF_TARGET_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(BPF_TARGET_ARCH arm64)
else()
  set(BPF_TARGET_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

set(BPF_CFLAGS -target bpf -mcpu=v3 -D__TARGET_ARCH_${BPF_TARGET_ARCH} -g -O2
    -Wall -Wextra -Werror -Wno-unused-parameter)
set(BPF_INCLUDES -I${PROJECT_SOURCE_DIR}/bpf -I${PROJECT_SOURCE_DIR}/include
    -I${CMAKE_BINARY_DIR}/bpf -I/usr/include/${BPF_MULTIARCH})
set(BPF_SKEL_DIR ${CMAKE_BINARY_DIR}/skel)
file(MAKE_DIRECTORY ${BPF_SKEL_DIR})

function(bpf_object NAME SOURCE)
  if(IS_ABSOLUTE ${SOURCE})
    set(src ${SOURCE})
  else()
    set(src ${PROJECT_SOURCE_DIR}/bpf/${SOURCE})
  endif()
  set(obj ${CMAKE_BINARY_DIR}/bpf/${NAME}.bpf.o)
  set(skel ${BPF_SKEL_DIR}/${NAME}.skel.h)
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/bpf)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} ${BPF_CFLAGS} ${BPF_INCLUDES} -MD -MF ${obj}.d -c ${src} -o ${obj}
    DEPFILE ${obj}.d
    DEPENDS ${src} ${ARGN}
    COMMENT "BPF ${SOURCE}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${NAME} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${NAME}.skel.h"
    VERBATIM)
  add_custom_target(${NAME}_skel_gen DEPENDS ${skel})
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${BPF_SKEL_DIR})
endfunction()
