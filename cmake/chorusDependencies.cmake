# Finds chorus's dependencies; shared by the build (CMakeLists.txt) and the installed
# package (chorusConfig.cmake), so that both see the same targets.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(xsimd 8.1 CONFIG)
find_dependency(Boost 1.81 CONFIG COMPONENTS headers)
find_dependency(nlohmann_json 3.11 CONFIG)
# OpenSSL only for the network parts (remote members over https, the server's TLS): the
# chorus::network target exists where it is found.
find_package(OpenSSL QUIET)
# Debian's xsimd 8.1 target lists 'xtl' as a link dependency, although xsimd needs xtl
# only for optional xtl::xcomplex support and the package does not depend on it. Without
# libxtl-dev installed, linking would fail with "cannot find -lxtl"; xtl is header-only,
# so an empty interface target stands in for it.
if(NOT TARGET xtl)
  find_package(xtl CONFIG QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
