# Install rules (`cmake --install BUILD [--prefix P]`) and the Debian package (`cpack` in the
# build directory). What an operator gets, under the prefix (GNUInstallDirs):
#   bin/bpfgate                                 the CLI and the agent (BPF objects are embedded
#                                               in its skeletons: nothing else is loaded)
#   lib/systemd/system/bpfgate.service          deploy/bpfgate.service, ExecStart* naming the
#                                               installed binary
#   share/bpfgate/grafana-bpfgate.json          the Grafana dashboard
#   share/bpfgate/prometheus-bpfgate-rules.yaml the Prometheus alert rules
#   share/doc/bpfgate/README.md, examples/bpfgate.yaml
# The Debian package also ships the example as /etc/bpfgate/bpfgate.yaml, a conffile (the
# path the unit reads): dpkg keeps an operator's edits across upgrades. `cmake --install`
# never writes /etc (it would overwrite an edited config on every install): copy the example.
include(GNUInstallDirs)

install(TARGETS bpfgate RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT bpfgate)

# The unit names the binary by its installed path, known only at install time (cpack
# installs with its own prefix, /usr): written then from deploy/bpfgate.service.
set(BPFGATE_UNIT_DIR lib/systemd/system)
install(CODE "
  set(unit_dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${BPFGATE_UNIT_DIR}\")
  file(READ \"${PROJECT_SOURCE_DIR}/deploy/bpfgate.service\" unit)
  string(REPLACE \"/usr/local/bin/bpfgate\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/bpfgate\"
         unit \"\${unit}\")
  string(REPLACE \"/usr/share/doc/bpfgate\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\"
         unit \"\${unit}\")
  file(MAKE_DIRECTORY \"\${unit_dir}\")
  message(STATUS \"Installing: \${unit_dir}/bpfgate.service\")
  file(WRITE \"\${unit_dir}/bpfgate.service\" \"\${unit}\")
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${unit_dir}/bpfgate.service\")
" COMPONENT bpfgate)

install(FILES deploy/grafana-bpfgate.json deploy/prometheus-bpfgate-rules.yaml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bpfgate COMPONENT bpfgate)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT bpfgate)
install(FILES deploy/bpfgate.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT bpfgate)
# Only the package installs this one (its component is left out of a plain install).
install(FILES deploy/bpfgate.yaml DESTINATION /etc/bpfgate COMPONENT conffiles EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME bpfgate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(BPFGATE_MAINTAINER "bpfgate maintainers <root@localhost>"
    CACHE STRING "The Debian package's Maintainer: field")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${BPFGATE_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "eBPF gateway accelerator: XDP flood filter and agent")
# The extended description: cpack indents each line under the summary.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "An XDP filter drops floods per source before the kernel's stack sees them
(token buckets per source, per prefix and per rule, allow/deny lists,
protocol and port rules, auto-block with expiry) and counts every verdict.
One bpfgate binary is the CLI and the long-running agent, which applies a
YAML config atomically and serves Prometheus metrics. A systemd unit, a
Grafana dashboard and Prometheus alert rules are included.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends from the libraries the binary links (dpkg-shlibdeps, dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The binary without its debug information (a RelWithDebInfo build's is 61 MB).
set(CPACK_STRIP_FILES ON)
# The two components make one package; the conffiles list marks /etc's file as the operator's.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL bpfgate conffiles)
file(WRITE ${CMAKE_BINARY_DIR}/debian/conffiles "/etc/bpfgate/bpfgate.yaml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
