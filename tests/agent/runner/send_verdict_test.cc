// The runner's decisions on a send's answer, as a table: answer in, verdict out.

#include "agent/runner/send_verdict.h"

#include <doctest/doctest.h>

namespace {

using namespace logcapture;
using namespace logcapture::agent;
using namespace logcapture::base;
using namespace std::chrono_literals;
using sinks::Outcome;

sinks::SendResult answer(Outcome outcome, std::vector<sinks::RecordFailure> failures = {}, bool tooLarge = false) {
  sinks::SendResult r =
      outcome == Outcome::Success ? sinks::SendResult::success() : sinks::SendResult::failure(outcome, "why");
  r.failures = std::move(failures);
  r.tooLarge = tooLarge;
  return r;
}

using Indexes = std::vector<std::uint32_t>;

Indexes deadLettered(const SendVerdict& v) {
  Indexes out;
  for (const auto& [i, error] : v.deadLetter) out.push_back(i);
  return out;
}

}  // namespace

TEST_CASE("each sink outcome reaches the breaker as the breaker outcome of the same meaning") {
  CHECK(breakerOutcome(Outcome::Success) == circuit::Outcome::Success);
  CHECK(breakerOutcome(Outcome::Retriable) == circuit::Outcome::Retriable);
  CHECK(breakerOutcome(Outcome::Throttled) == circuit::Outcome::Throttled);
  CHECK(breakerOutcome(Outcome::Permanent) == circuit::Outcome::Permanent);
}

TEST_CASE("the verdict on a send's answer says what is delivered, dead-lettered, sent again and heard by the breaker") {
  struct Row {
    const char* what;
    sinks::SendResult result;
    std::size_t size;
    Outcome breaker;
    std::uint64_t delivered;
    Indexes deadLetter;
    bool retryAll;
    Indexes retry;
    bool split;
  };
  const Row rows[] = {
      {"success", answer(Outcome::Success), 4, Outcome::Success, 4, {}, false, {}, false},
      {"retriable", answer(Outcome::Retriable), 4, Outcome::Retriable, 0, {}, true, {}, false},
      {"throttled", answer(Outcome::Throttled), 4, Outcome::Throttled, 0, {}, true, {}, false},
      {"permanent", answer(Outcome::Permanent), 3, Outcome::Permanent, 0, {0, 1, 2}, false, {}, false},
      {"too large", answer(Outcome::Permanent, {}, true), 4, Outcome::Permanent, 0, {}, false, {}, true},
      {"one record too large", answer(Outcome::Permanent, {}, true), 1, Outcome::Permanent, 0, {0}, false, {}, false},
      {"partial: one permanent, one retriable",
       answer(Outcome::Success, {{3, Outcome::Permanent, "bad"}, {1, Outcome::Retriable, "busy"}}),
       4,
       Outcome::Success,
       2,
       {3},
       false,
       {1},
       false},
      {"partial: every record retriable",
       answer(Outcome::Success, {{0, Outcome::Retriable, "busy"}, {1, Outcome::Retriable, "busy"}}),
       2,
       Outcome::Retriable,
       0,
       {},
       false,
       {0, 1},
       false},
      {"partial: every record throttled",
       answer(Outcome::Success, {{0, Outcome::Throttled, "429"}}),
       1,
       Outcome::Throttled,
       0,
       {},
       false,
       {0},
       false},
      {"partial: every record permanent",
       answer(Outcome::Success, {{0, Outcome::Permanent, "bad"}, {1, Outcome::Permanent, "bad"}}),
       2,
       Outcome::Success,
       0,
       {0, 1},
       false,
       {},
       false},
      {"partial: the call failed as a whole",
       answer(Outcome::Retriable, {{0, Outcome::Retriable, "busy"}}),
       3,
       Outcome::Retriable,
       2,
       {},
       false,
       {0},
       false},
      {"partial: a record listed twice or out of range",
       answer(Outcome::Success,
              {{1, Outcome::Retriable, "a"}, {1, Outcome::Permanent, "b"}, {9, Outcome::Permanent, "c"}}),
       3,
       Outcome::Success,
       2,
       {},
       false,
       {1},
       false},
  };
  for (const Row& row : rows) {
    CAPTURE(row.what);
    const SendVerdict v = judge(row.result, row.size);
    CHECK(v.breaker == breakerOutcome(row.breaker));
    CHECK(v.delivered == row.delivered);
    CHECK(deadLettered(v) == row.deadLetter);
    CHECK(v.retryAll == row.retryAll);
    CHECK(v.retry == row.retry);
    CHECK(v.split == row.split);
    CHECK(v.done() == (!row.retryAll && row.retry.empty() && !row.split));
  }
}

TEST_CASE("a dead-lettered record carries the error the destination gave") {
  const SendVerdict whole = judge(sinks::SendResult::failure(Outcome::Permanent, "HTTP 400: mapping"), 2);
  REQUIRE(whole.deadLetter.size() == 2);
  CHECK(whole.deadLetter[1].second == "HTTP 400: mapping");
  const SendVerdict partial = judge(answer(Outcome::Success, {{1, Outcome::Permanent, "mapper_parsing_exception"}}), 2);
  REQUIRE(partial.deadLetter.size() == 1);
  CHECK(partial.deadLetter[0].second == "mapper_parsing_exception");
}

TEST_CASE("any answer to a probe but a success fails the trial") {
  CHECK(judgeProbe(sinks::SendResult::success()) == circuit::Outcome::Success);
  for (auto o : {Outcome::Retriable, Outcome::Throttled, Outcome::Permanent}) {
    CAPTURE(sinks::outcomeName(o));
    CHECK(judgeProbe(sinks::SendResult::failure(o, "HTTP 401")) == circuit::Outcome::Retriable);
  }
}

TEST_CASE("the wait before a retry is the backoff or a Retry-After capped at max_open_timeout") {
  struct Row {
    std::chrono::nanoseconds backoff;
    std::optional<std::chrono::milliseconds> retryAfter;
    std::chrono::nanoseconds cap;
    std::chrono::nanoseconds want;
  };
  const Row rows[] = {
      {100ms, std::nullopt, 5min, 100ms},
      {100ms, 2000ms, 5min, 2s},
      {3s, 2000ms, 5min, 3s},
      {100ms, std::chrono::milliseconds(std::chrono::hours(24)), 5min, 5min},
      {100ms, 0ms, 5min, 100ms},
  };
  for (const Row& row : rows) CHECK(retryDelay(row.backoff, row.retryAfter, row.cap) == row.want);
}

TEST_CASE("the action after a send says whether the batch is finished, sent again, waits for the breaker or is split") {
  using Then = Action::Then;
  DeliveryRules rules;
  rules.maxAttempts = 3;
  rules.initialBackoff = 100ms;
  rules.maxBackoff = 1s;
  rules.maxRetryAfter = 5min;
  sinks::SendResult retryAfter = answer(Outcome::Throttled);
  retryAfter.retryAfter = 2000ms;
  sinks::SendResult retryAfterTooLong = answer(Outcome::Throttled);
  retryAfterTooLong.retryAfter = std::chrono::hours(24);
  struct Row {
    const char* what;
    sinks::SendResult result;
    std::uint32_t attempts;  // this send included
    std::uint32_t rounds;
    double jitter;
    Then then;
    std::chrono::nanoseconds wait;
  };
  const Row rows[] = {
      {"delivered", answer(Outcome::Success), 1, 0, 0.5, Then::Finish, 0ms},
      {"dead-lettered", answer(Outcome::Permanent), 1, 0, 0.5, Then::Finish, 0ms},
      {"partly dead-lettered, partly delivered", answer(Outcome::Success, {{0, Outcome::Permanent, "bad"}}), 1, 0, 0.5,
       Then::Finish, 0ms},
      {"too large", answer(Outcome::Permanent, {}, true), 1, 0, 0.5, Then::Split, 0ms},
      {"first failure: half the first backoff", answer(Outcome::Retriable), 1, 0, 0.5, Then::Retry, 50ms},
      {"second failure: the backoff doubles", answer(Outcome::Retriable), 2, 0, 0.5, Then::Retry, 100ms},
      {"last attempt: the breaker decides", answer(Outcome::Retriable), 3, 0, 0.5, Then::WaitForBreaker, 400ms / 2},
      {"a later round waits at the longest backoff", answer(Outcome::Retriable), 2, 1, 0.5, Then::Retry, 500ms},
      {"no jitter drawn: no wait", answer(Outcome::Retriable), 1, 0, 0.0, Then::Retry, 0ms},
      {"Retry-After longer than the backoff", retryAfter, 1, 0, 0.5, Then::Retry, 2s},
      {"Retry-After capped at max_open_timeout", retryAfterTooLong, 1, 0, 0.5, Then::Retry, 5min},
      {"a partial answer sends the retriable records again",
       answer(Outcome::Success, {{1, Outcome::Retriable, "busy"}}), 1, 0, 0.5, Then::Retry, 50ms},
  };
  for (const Row& row : rows) {
    CAPTURE(row.what);
    PendingBatch pb;
    for (int i = 0; i < 4; ++i) pb.batch.seal(nullptr);
    pb.attempts = row.attempts;
    pb.rounds = row.rounds;
    const Action a = decide(row.result, pb, rules, row.jitter);
    CHECK(a.then == row.then);
    CHECK(a.wait == row.wait);
    CHECK(a.verdict.breaker == judge(row.result, 4).breaker);
  }
}

TEST_CASE("a batch the breaker refuses waits at the head of its lane, or is dropped with on_open: drop") {
  PendingBatch pb;
  DeliveryRules rules;
  rules.dropWhileOpen = false;
  CHECK(decideRefused(pb, rules).then == Action::Then::WaitForBreaker);
  rules.dropWhileOpen = true;
  const Action dropped = decideRefused(pb, rules);
  CHECK(dropped.then == Action::Then::Drop);
  CHECK(dropped.dropReason == DropReason::BreakerOpen);
}
