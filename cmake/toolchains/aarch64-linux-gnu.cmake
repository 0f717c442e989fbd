# Cross-compiling for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu; the arm64 builds of
# the dependencies come from Debian multiarch (dpkg --add-architecture arm64: libgtest-dev:arm64,
# ...), found under /usr/lib/aarch64-linux-gnu. Tests run under qemu-aarch64 (qemu-user);
# QEMU_CPU picks the emulated CPU (max: with the dot-product extension; cortex-a53: without).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# The host's own libraries (libssl.so, CMake packages under /usr/lib/x86_64-linux-gnu) would be
# found first otherwise, and an x86-64 library cannot be linked into an arm64 program.
list(APPEND CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/cmake)
