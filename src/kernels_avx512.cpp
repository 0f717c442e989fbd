// The avx512 level's kernel table for chorus's own programs (tests, the command-line tool, examples, benches),
// compiled once here instead of in every source file, one file per level so that the levels
// compile in parallel: the programs define CHORUS_EXTERN_KERNELS and link these (CMake target
// chorus_kernels). chorus stays header-only; a user project may do the same (docs/build-time.md).
// On a target without this level the file compiles to nothing.
#define CHORUS_DEFINE_KERNELS_AVX512
#include <chorus/inference.hpp>
