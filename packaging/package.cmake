# packaging/package.cmake — install rules and the Debian package (CPack DEB), included by
# CMakeLists.txt.
#
# `cmake --build build --target package` writes build/amqp-gw_<version>_<arch>.deb: the binary,
# an example config and routing table in /etc/amqp-gw (conffiles), /etc/default/amqp-gw for
# credentials, the sandboxed systemd unit, the man pages amqp-gw(1) and amqp-gw.yaml(5), and
# the Debian copyright and changelog. Depends: is computed by dpkg-shlibdeps from the libraries
# the binary links. The files it ships are under packaging/ and docs/man/; the /etc config is
# config/amqp-gw.yaml with its routes_file and broker URL rewritten below, so the two never
# drift apart.

set(GW_PKG_DIR ${CMAKE_SOURCE_DIR}/packaging)
set(GW_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)
set(GW_PKG_MAINTAINER "amqp-gw maintainers <maintainers@users.noreply.r-seed-59ef725a.example>"
    CACHE STRING "Maintainer: field of the Debian package")

# /etc/amqp-gw/amqp-gw.yaml: config/amqp-gw.yaml, but for the routing table next to it and no
# password in the broker URL (the unit reads credentials from /etc/default/amqp-gw). Each
# rewritten line must be found, so that an edit of config/amqp-gw.yaml cannot silently ship a
# config that points at ../routes/.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/config/amqp-gw.yaml)
file(READ ${CMAKE_SOURCE_DIR}/config/amqp-gw.yaml gw_etc_config)
foreach(pair
        "routes_file: ../routes/example.yaml   # relative to this file|routes_file: routes.yaml          # relative to this file: /etc/amqp-gw/routes.yaml"
        "  urls: [\"amqp://guest:guest@localhost:5672/%2f\"]|  urls: [\"amqp://localhost:5672/%2f\"]"
        "  # scripts/ point the gateway at their private broker through AMQP_GW_URL.|  # The amqp-gw service reads AMQP_GW_URL, AMQP_GW_USER and AMQP_GW_PASSWORD from\n  # /etc/default/amqp-gw (mode 0600): keep credentials there, not in this file.")
  string(FIND "${pair}" "|" bar)
  string(SUBSTRING "${pair}" 0 ${bar} from)
  math(EXPR bar "${bar} + 1")
  string(SUBSTRING "${pair}" ${bar} -1 to)
  string(FIND "${gw_etc_config}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "packaging/package.cmake: config/amqp-gw.yaml no longer has the line "
                        "'${from}' that the packaged /etc/amqp-gw/amqp-gw.yaml rewrites; update "
                        "the rewrite in packaging/package.cmake")
  endif()
  string(REPLACE "${from}" "${to}" gw_etc_config "${gw_etc_config}")
endforeach()
file(CONFIGURE OUTPUT ${GW_PKG_OUT}/amqp-gw.yaml CONTENT "${gw_etc_config}" @ONLY)
configure_file(${GW_PKG_DIR}/changelog.in ${GW_PKG_OUT}/changelog @ONLY)

# Man pages and the changelog go in gzipped (-n: no name or time stamp, reproducible).
set(gw_gz_files)
foreach(src docs/man/amqp-gw.1 docs/man/amqp-gw.yaml.5 ${GW_PKG_OUT}/changelog)
  get_filename_component(name ${src} NAME)
  if(NOT IS_ABSOLUTE ${src})
    set(src ${CMAKE_SOURCE_DIR}/${src})
  endif()
  add_custom_command(OUTPUT ${GW_PKG_OUT}/${name}.gz
                     COMMAND gzip -9n -c ${src} > ${GW_PKG_OUT}/${name}.gz
                     DEPENDS ${src} VERBATIM)
  list(APPEND gw_gz_files ${GW_PKG_OUT}/${name}.gz)
endforeach()
add_custom_target(gw-package-files ALL DEPENDS ${gw_gz_files})

install(TARGETS amqp-gw RUNTIME DESTINATION bin)
install(FILES ${GW_PKG_OUT}/amqp-gw.1.gz DESTINATION share/man/man1)
install(FILES ${GW_PKG_OUT}/amqp-gw.yaml.5.gz DESTINATION share/man/man5)
install(FILES ${GW_PKG_DIR}/copyright ${GW_PKG_OUT}/changelog.gz DESTINATION share/doc/amqp-gw)
install(FILES ${GW_PKG_OUT}/amqp-gw.yaml DESTINATION /etc/amqp-gw)
install(FILES ${CMAKE_SOURCE_DIR}/routes/example.yaml DESTINATION /etc/amqp-gw RENAME routes.yaml)
# Credentials: readable by root only (systemd reads EnvironmentFile= before dropping privileges).
install(FILES ${GW_PKG_DIR}/default DESTINATION /etc/default RENAME amqp-gw
        PERMISSIONS OWNER_READ OWNER_WRITE)
install(FILES ${GW_PKG_DIR}/amqp-gw.service DESTINATION /lib/systemd/system)
install(FILES ${GW_PKG_DIR}/lintian-overrides DESTINATION share/lintian/overrides RENAME amqp-gw)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME amqp-gw)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "RabbitMQ routing gateway with retries and a dead-letter queue")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "amqp-gw reads domain events from one inbound RabbitMQ (AMQP 0-9-1)
queue and republishes each to the exchanges a YAML routing table names,
with a correlation ID and retry headers. Failed publishes are retried with
backoff through delay queues on the broker, a circuit breaker per
destination stops a failing one from burning retries, and what cannot be
delivered is parked in a dead-letter queue with the reason, to be replayed
once the cause is fixed. Inbound events are acknowledged only after the
broker confirmed every copy (at-least-once).
.
This package ships the daemon with a sandboxed systemd unit, an example
configuration in /etc/amqp-gw and the manual pages.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${GW_PKG_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # amqp-gw_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # Depends: from dpkg-shlibdeps
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${GW_PKG_DIR}/conffiles;${GW_PKG_DIR}/postinst;${GW_PKG_DIR}/prerm;${GW_PKG_DIR}/postrm")
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR})
include(CPack)
