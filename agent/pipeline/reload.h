#pragma once

// Config reload: the outcome of one, and the Reloader that runs them.
//
// NOTE on threads: request() and requestAndWait() may be called from any thread (the daemon's main
// loop on SIGHUP, the admin server's handlers); one reloader thread runs the reloads, one at a time,
// so the pipeline never sees two at once. mutex_ guards the request counters and the last outcome.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace logcapture::agent {

struct ReloadOutcome {
  // False when the new config was invalid or could not be applied; the running config then stays.
  bool applied = false;
  std::string error;                 // why not applied: the config errors, one per line
  std::vector<std::string> changes;  // what the reload did, e.g. "sink redis rebuilt", "input app added"
};

// Runs reloads on its own thread. Requests that arrive while a reload runs are coalesced into the
// next one, which starts after the last of them: the config file is read after every request, so the
// last edit is always applied and no request is lost.
class Reloader {
 public:
  using Reload = std::function<ReloadOutcome()>;
  explicit Reloader(Reload reload);
  ~Reloader();  // stop()
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Asks for a reload and returns at once.
  void request();
  // Asks for a reload and waits for the outcome of the first one that started after this call.
  // Returns {applied=false, error} when the reloader stops first.
  ReloadOutcome requestAndWait();
  // Waits for a reload in progress, drops the requests not yet started and ends the thread.
  void stop();
  std::uint64_t completed() const;  // reloads run so far

 private:
  void run();

  const Reload reload_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t requested_ = 0;  // requests so far; a reload started at requested_ == n serves 1..n
  std::uint64_t served_ = 0;     // requests served by finished reloads
  std::uint64_t completed_ = 0;
  ReloadOutcome last_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace logcapture::agent
