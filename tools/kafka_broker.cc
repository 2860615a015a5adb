// logcapture-kafka-broker: a Kafka cluster in one process, for the tests and the demo stack.
//
// It is librdkafka's mock cluster (rdkafka_mock.h), which speaks the real protocol on 127.0.0.1,
// so the sink under test runs its own unmodified producer against it. Faults are injected by
// commands on stdin, one per line, each answered by one line on stdout ("ok" or "error ..."):
//
//   down <broker_id>                    the broker drops its connections and refuses new ones (-1: all)
//   up <broker_id>                      it accepts connections again
//   rtt <broker_id> <ms>                every response of the broker is delayed this long
//   error produce <errname> <count>     the next <count> Produce requests fail with <errname>
//                                       (a librdkafka error name such as NOT_LEADER_FOR_PARTITION)
//   topic <topic> <errname>             metadata answers about the topic carry <errname> (such as
//                                       UNKNOWN_TOPIC_OR_PART or TOPIC_AUTHORIZATION_FAILED) until
//                                       set back to NO_ERROR
//   quit                                exit (as do end of input, SIGINT and SIGTERM)
//
// Once the cluster listens it prints "bootstrap <host:port,...>" on stdout.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

// The Kafka protocol's ApiKey of ProduceRequest; librdkafka's protocol header is not installed.
constexpr std::int16_t kProduceApiKey = 0;

constexpr const char* kUsage =
    "usage: logcapture-kafka-broker [--brokers N] [--topic NAME[:PARTITIONS]]...\n"
    "Runs a mock Kafka cluster on 127.0.0.1, prints 'bootstrap HOST:PORT,...', then reads commands on stdin:\n"
    "  down ID | up ID | rtt ID MS | error produce ERRNAME COUNT | topic NAME ERRNAME | quit\n";

struct Topic {
  std::string name;
  int partitions = 1;
};

struct Options {
  int brokers = 1;
  std::vector<Topic> topics;
};

template <class T>
std::optional<T> number(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<Options> parseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool hasValue = i + 1 < argc;
    if (arg == "--brokers" && hasValue) {
      const auto n = number<int>(argv[++i]);
      if (!n || *n < 1 || *n > 16) return std::nullopt;
      o.brokers = *n;
    } else if (arg == "--topic" && hasValue) {
      const std::string_view spec = argv[++i];
      const auto colon = spec.rfind(':');
      Topic t{std::string(spec.substr(0, colon)), 1};
      if (colon != std::string_view::npos) {
        const auto n = number<int>(spec.substr(colon + 1));
        if (!n || *n < 1) return std::nullopt;
        t.partitions = *n;
      }
      if (t.name.empty()) return std::nullopt;
      o.topics.push_back(std::move(t));
    } else {
      return std::nullopt;
    }
  }
  return o;
}

std::optional<rd_kafka_resp_err_t> errorByName(std::string_view name) {
  const struct rd_kafka_err_desc* descs = nullptr;
  std::size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  for (std::size_t i = 0; i < count; ++i) {
    if (descs[i].name != nullptr && name == descs[i].name) return descs[i].code;
  }
  return std::nullopt;
}

std::string answer(rd_kafka_resp_err_t err) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return "ok";
  return std::string("error ") + rd_kafka_err2name(err) + ": " + rd_kafka_err2str(err);
}

// Runs one command line; sets `quit` on "quit".
std::string run(rd_kafka_mock_cluster_t* cluster, const std::string& line, bool& quit) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.empty()) return "error empty command";
  const std::string& verb = words[0];
  if (verb == "quit" && words.size() == 1) {
    quit = true;
    return "ok";
  }
  if ((verb == "down" || verb == "up") && words.size() == 2) {
    const auto id = number<std::int32_t>(words[1]);
    if (!id) return "error broker id expected, found '" + words[1] + "'";
    return answer(verb == "down" ? rd_kafka_mock_broker_set_down(cluster, *id)
                                 : rd_kafka_mock_broker_set_up(cluster, *id));
  }
  if (verb == "rtt" && words.size() == 3) {
    const auto id = number<std::int32_t>(words[1]);
    const auto ms = number<int>(words[2]);
    if (!id || !ms || *ms < 0) return "error usage: rtt <broker_id> <ms>";
    return answer(rd_kafka_mock_broker_set_rtt(cluster, *id, *ms));
  }
  if (verb == "error" && words.size() == 4 && words[1] == "produce") {
    const auto err = errorByName(words[2]);
    if (!err) return "error unknown error name '" + words[2] + "' (librdkafka names, e.g. NOT_LEADER_FOR_PARTITION)";
    const auto count = number<std::size_t>(words[3]);
    if (!count || *count == 0 || *count > 100000) return "error count expected, found '" + words[3] + "'";
    const std::vector<rd_kafka_resp_err_t> errors(*count, *err);
    rd_kafka_mock_push_request_errors_array(cluster, kProduceApiKey, errors.size(), errors.data());
    return "ok";
  }
  if (verb == "topic" && words.size() == 3) {
    const auto err = errorByName(words[2]);
    if (!err) return "error unknown error name '" + words[2] + "' (librdkafka names, e.g. UNKNOWN_TOPIC_OR_PART)";
    rd_kafka_mock_topic_set_error(cluster, words[1].c_str(), *err);
    return "ok";
  }
  return "error unknown command '" + line +
         "'; commands: down ID, up ID, rtt ID MS, error produce ERRNAME COUNT, topic NAME ERRNAME, quit";
}

void reply(const std::string& text) {
  std::fputs(text.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parseArgs(argc, argv);
  if (!options) {
    std::fputs(kUsage, stderr);
    return 2;
  }

  // Signals are read from a descriptor beside stdin. They are blocked before librdkafka starts its
  // threads, which inherit the mask, so none of those threads takes them.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr) != 0) return 1;
  sigdelset(&stopSignals, SIGPIPE);
  const int signals = signalfd(-1, &stopSignals, SFD_CLOEXEC);
  if (signals < 0) {
    std::perror("signalfd");
    return 1;
  }

  // The mock cluster needs a client handle for its bookkeeping; it is never used to produce. The
  // cluster's accepted sockets take their options from it: a real broker answers with Nagle off
  // (TCP_NODELAY), and with it on, a second answer in flight on a connection waits for the client's
  // delayed ACK, about 40 ms, whenever a producer has requests for two partitions out at once.
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] : {std::pair{"log_level", "3"}, std::pair{"socket.nagle.disable", "true"}}) {
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "%s\n", err);
      rd_kafka_conf_destroy(conf);
      return 1;
    }
  }
  rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (handle == nullptr) {
    std::fprintf(stderr, "cannot create the client handle: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(handle, options->brokers);
  if (cluster == nullptr) {
    std::fputs("cannot create the mock cluster\n", stderr);
    rd_kafka_destroy(handle);
    return 1;
  }
  int status = 0;
  for (const auto& t : options->topics) {
    const rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(cluster, t.name.c_str(), t.partitions, std::min(options->brokers, 3));
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "cannot create topic %s: %s\n", t.name.c_str(), rd_kafka_err2str(e));
      status = 1;
    }
  }

  if (status == 0) {
    reply(std::string("bootstrap ") + rd_kafka_mock_cluster_bootstraps(cluster));
    std::string pending;
    bool quit = false;
    while (!quit) {
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {signals, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        status = 1;
        break;
      }
      if (fds[1].revents != 0) break;
      if (fds[0].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // end of input: whoever drove us is gone
      pending.append(buf, static_cast<std::size_t>(n));
      for (auto nl = pending.find('\n'); nl != std::string::npos && !quit; nl = pending.find('\n')) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        reply(run(cluster, line, quit));
      }
    }
  }

  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(handle);
  close(signals);
  return status;
}
