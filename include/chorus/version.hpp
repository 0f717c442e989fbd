// chorus — library version.
#pragma once

#define CHORUS_VERSION_MAJOR 0
#define CHORUS_VERSION_MINOR 1
#define CHORUS_VERSION_PATCH 0
#define CHORUS_VERSION_STRING "0.1.0"

namespace chorus {
inline constexpr int version_major = CHORUS_VERSION_MAJOR;
inline constexpr int version_minor = CHORUS_VERSION_MINOR;
inline constexpr int version_patch = CHORUS_VERSION_PATCH;
inline constexpr const char* version_string = CHORUS_VERSION_STRING;
}  // namespace chorus
