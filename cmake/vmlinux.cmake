# vmlinux.h for the tracing programs (bpf/observe/observe_trace.bpf.c), generated at
# build time from the build host's kernel BTF and never committed. Networking
# programs keep using the UAPI headers. VMLINUX_BTF overrides the source (e.g.
# a BTF file of the kernel you deploy to, when building elsewhere).
set(VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "kernel BTF that vmlinux.h is generated from")
set(VMLINUX_H ${CMAKE_BINARY_DIR}/bpf/vmlinux.h)
if(NOT EXISTS ${VMLINUX_BTF})
  message(FATAL_ERROR "no kernel BTF at ${VMLINUX_BTF}: the tracing probes need a vmlinux.h; "
                      "build on a kernel with CONFIG_DEBUG_INFO_BTF=y or pass -DVMLINUX_BTF=FILE")
endif()
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/bpf)
add_custom_command(
  OUTPUT ${VMLINUX_H}
  COMMAND ${BPFTOOL} btf dump file ${VMLINUX_BTF} format c > ${VMLINUX_H}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${VMLINUX_H}.tmp ${VMLINUX_H}
  COMMENT "vmlinux.h from ${VMLINUX_BTF}"
  VERBATIM)
