#pragma once

// The admin server's front door: every connection waits here, on one thread, until its request has
// arrived whole (headers and body); only then does a serving thread take it. A slow or idle client
// costs a descriptor, not a serving thread, so no number of them can keep /health from answering.
// Liveness and readiness probes (GET or HEAD of /health and /ready) have a serving thread of their
// own, so they never queue behind a slow reload or scrape either.
//
// NOTE on threads:
// - add() is called by the accept thread (httplib's); it hands the descriptor over under mutex_ and
//   wakes the intake thread.
// - The intake thread alone reads from waiting connections and owns their list (waiting_).
// - Complete requests go to a Lane: its own threads, its queue guarded by its own mutex.
// - start() and stop() are called by the owner's thread. stop() closes the connections still waiting
//   or queued, and returns once the requests being served have finished.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace logcapture::agent {
class Wakeup;
}

namespace logcapture::agent::admin {

// A request read whole, and the connection it came on.
struct WholeRequest {
  int fd = -1;        // owned: whoever holds the request closes it
  std::string bytes;  // the request line, the headers and the body
};

// How far the bytes of a connection are from a request that can be served.
enum class RequestProgress {
  Incomplete,       // wait for more
  Complete,         // headers and the whole body (per Content-Length) are here
  HeadersTooLarge,  // no end of the headers within the limit: 431
  BodyTooLarge,     // Content-Length past the limit: 413
  Chunked,          // Transfer-Encoding: the API takes bodies of a known length only: 411
};

struct IntakeLimits {
  std::chrono::milliseconds requestTimeout{5000};  // from accept to the whole request: 408 after it
  std::size_t maxHeaderBytes = 16 * 1024;
  std::size_t maxBodyBytes = 64 * 1024;
  std::size_t maxWaiting = 256;  // connections waiting at once; a new one past it closes the oldest
  std::size_t threads = 3;       // serving threads besides the probes' own
};

// Pure: where `bytes`, the start of a request, stand.
RequestProgress requestProgress(std::string_view bytes, const IntakeLimits& limits);
// Pure: true for GET or HEAD of /health or /ready, which the probe thread serves.
bool isProbe(std::string_view bytes);

class RequestIntake {
 public:
  // Serves one whole request and closes its descriptor. Called on a serving thread.
  using Serve = std::function<void(WholeRequest)>;

  RequestIntake(IntakeLimits limits, Serve serve);
  ~RequestIntake();  // stop()
  RequestIntake(const RequestIntake&) = delete;
  RequestIntake& operator=(const RequestIntake&) = delete;

  void start();
  // Takes ownership of an accepted connection; closes it at once after stop().
  void add(int fd);
  void stop();

 private:
  // Serving threads and their queue.
  class Lane {
   public:
    Lane(std::size_t threads, const Serve& serve);
    ~Lane();
    void push(WholeRequest request);
    // Closes what is queued, waits for what is being served.
    void stop();

   private:
    const Serve& serve_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<WholeRequest> queue_;  // guarded by mutex_
    bool stopping_ = false;           // guarded by mutex_
    std::vector<std::thread> threads_;
  };

  struct Waiting {
    int fd = -1;
    std::string bytes;
    std::chrono::steady_clock::time_point deadline;
  };

  void run();
  void admitNew();
  // Reads what the connection has; false when it is finished with (served, refused or gone).
  bool readFrom(Waiting& w);
  void dispatch(Waiting& w);
  void refuse(Waiting& w, int status, std::string_view reason);

  const IntakeLimits limits_;
  const Serve serve_;
  std::unique_ptr<Wakeup> wakeup_;
  std::mutex mutex_;
  std::vector<int> incoming_;  // guarded by mutex_
  bool stopping_ = false;      // guarded by mutex_
  bool started_ = false;
  std::vector<Waiting> waiting_;  // intake thread only, oldest first
  std::unique_ptr<Lane> probes_;
  std::unique_ptr<Lane> general_;
  std::thread thread_;
};

}  // namespace logcapture::agent::admin
