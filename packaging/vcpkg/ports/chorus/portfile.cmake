# chorus is header-only: the port installs the headers and chorus's own CMake package
# (chorusConfig.cmake: the chorus::chorus target and its dependencies); nothing is compiled.
if(DEFINED ENV{CHORUS_SOURCE_DIR})
  # A local checkout instead of a release archive: how docs/packaging.md checks the port.
  set(SOURCE_PATH "$ENV{CHORUS_SOURCE_DIR}")
else()
  # Fill in REPO and SHA512 when a release is published (vcpkg prints the SHA512 to use).
  vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO chorus-llm/chorus
    REF "v${VERSION}"
    SHA512 0
    HEAD_REF main
  )
endif()

set(VCPKG_BUILD_TYPE release)  # headers only: one configuration is all there is
vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DCHORUS_BUILD_TESTS=OFF
    -DCHORUS_BUILD_EXAMPLES=OFF
    -DCHORUS_BUILD_BENCH=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/chorus)

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
