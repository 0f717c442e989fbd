# Installs nothing: the package comes from the system (Debian 12), whose CMake config
# find_package() finds under /usr. Only for docs/packaging.md's offline check of the chorus port.
set(VCPKG_POLICY_EMPTY_PACKAGE enabled)
