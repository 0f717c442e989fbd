// chorus — the network parts: remote fusion members (any OpenAI-compatible endpoint, http and
// https) and the OpenAI-compatible server (`chorus serve`). They need Boost.Beast and OpenSSL:
// link -lssl -lcrypto (the CMake target chorus::network does). Include this header, or define
// CHORUS_NETWORK before including <chorus/chorus.hpp> (the single header has them too).
#pragma once

#include "chorus/chorus.hpp"

#include "chorus/fusion/remote_member.hpp"
#include "chorus/server/options.hpp"
#include "chorus/server/metrics.hpp"
#include "chorus/server/http.hpp"
#include "chorus/server/service.hpp"
#include "chorus/server/server.hpp"
