// chorus — umbrella header: on-device LLM inference (chorus/inference.hpp) and model fusion
// (fusion/: needs Boost.Asio).
// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "chorus/inference.hpp"

// fusion/
#include "chorus/fusion/request.hpp"
#include "chorus/fusion/decision.hpp"
#include "chorus/fusion/extract.hpp"
#include "chorus/fusion/concepts.hpp"
#include "chorus/fusion/policy.hpp"
#include "chorus/fusion/gather.hpp"
#include "chorus/fusion/local_member.hpp"
#include "chorus/fusion/report.hpp"
#include "chorus/fusion/fuse.hpp"
#include "chorus/fusion/judges/prompts.hpp"
#include "chorus/fusion/judges/parse.hpp"
#include "chorus/fusion/judges/confidence.hpp"
#include "chorus/fusion/judges/vote.hpp"
#include "chorus/fusion/judges/best_of.hpp"
#include "chorus/fusion/judges/merge.hpp"
#include "chorus/fusion/judges/debate.hpp"
#include "chorus/fusion/judges/agreement.hpp"
#include "chorus/fusion/judges/verifier.hpp"
#include "chorus/fusion/plan.hpp"
#include "chorus/fusion/openai.hpp"

// The network parts: remote members (fusion/remote_member.hpp) and the OpenAI-compatible server
// (server/). They need Boost.Beast and OpenSSL (link -lssl -lcrypto; the CMake target
// chorus::network does both), so they are opt-in: define CHORUS_NETWORK before including this
// header, or include "chorus/network.hpp".
#if defined(CHORUS_NETWORK)
#include "chorus/network.hpp"
#endif
