// chorus — the fusion concepts: a member answers a request asynchronously, a judge turns the
// candidates into one answer. Any plain struct with these members plugs in; no base class.
#pragma once

#include <concepts>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>

#include "chorus/config.hpp"
#include "chorus/fusion/request.hpp"

namespace chorus::inline CHORUS_ABI::fusion {

namespace asio = boost::asio;

// A member: name() and answer(request) -> awaitable<candidate>. The awaiting operation's
// cancellation slot is how the pool tells it to stop (between tokens for local models).
template <class M>
concept member = requires(M& m, const request& r) {
  { m.name() } -> std::convertible_to<std::string>;
  { m.answer(r) } -> std::same_as<asio::awaitable<candidate>>;
};

struct decision;  // judge.hpp

// A judge: name() and decide(request, candidates) -> awaitable<decision>.
template <class J>
concept judge = requires(J& j, const request& r, std::span<const candidate> c) {
  { j.name() } -> std::convertible_to<std::string>;
  { j.decide(r, c) } -> std::same_as<asio::awaitable<decision>>;
};

// Holds any member behind one interface, so that a pool can mix local models, remote
// endpoints and user types in one list. (Type erasure inside; users write plain structs.)
class any_member {
 public:
  template <member M>
  any_member(std::shared_ptr<M> m)  // NOLINT: implicit on purpose
      : object_(m), name_(m->name()), answer_([](void* self, const request& r) { return static_cast<M*>(self)->answer(r); }) {}

  const std::string& name() const noexcept { return name_; }
  asio::awaitable<candidate> answer(const request& r) const { return answer_(object_.get(), r); }

 private:
  std::shared_ptr<void> object_;
  std::string name_;
  asio::awaitable<candidate> (*answer_)(void*, const request&);
};

}  // namespace chorus::inline CHORUS_ABI::fusion
