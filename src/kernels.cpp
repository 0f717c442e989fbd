// The kernel tables of chorus's own programs (tests, the command-line tool, benches), compiled
// once here instead of in every source file: they define CHORUS_EXTERN_KERNELS and link this
// (CMake target chorus_kernels). chorus stays header-only; a user project may do the same
// (docs/build-time.md).
#define CHORUS_DEFINE_KERNELS
#include <chorus/inference.hpp>
