// Only in ThreadSanitizer builds of the tests and of the agent they run: C11 threads routed through pthreads.
//
// librdkafka (Debian's build) uses C11 threads, mutexes and condition variables. glibc implements
// them by calling its pthread internals directly, past TSan's interceptors, so TSan never learns of
// librdkafka's threads (it crashes in their first malloc) nor of its locks (it reports every hand-over
// between librdkafka's threads, and to our callbacks, as a race). Defined in the executable,
// these take precedence over glibc's for librdkafka and go through the intercepted pthread calls.
// glibc's C11 types are its pthread types under another name, which the asserts check.
// The suppression at the end covers what remains: librdkafka's own atomics, which TSan cannot see.

#if defined(__SANITIZE_THREAD__)

#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>

namespace {

static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t));
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t));
static_assert(sizeof(once_flag) == sizeof(pthread_once_t));
static_assert(sizeof(thrd_t) == sizeof(pthread_t));

pthread_mutex_t* native(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* native(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }
int result(int rc) {
  switch (rc) {
    case 0:
      return thrd_success;
    case ETIMEDOUT:
      return thrd_timedout;
    case EBUSY:
      return thrd_busy;
    case ENOMEM:
    case EAGAIN:
      return thrd_nomem;
    default:
      return thrd_error;
  }
}

struct ThreadStart {
  thrd_start_t start;
  void* arg;
};

void* runThread(void* p) {
  const ThreadStart ts = *static_cast<ThreadStart*>(p);
  delete static_cast<ThreadStart*>(p);
  // thrd_join takes the int back out of the pointer, as glibc's own C11 threads do.
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(ts.start(ts.arg)));
}

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t start, void* arg) {
  auto* ts = new ThreadStart{start, arg};
  const int rc = pthread_create(thread, nullptr, runThread, ts);
  if (rc != 0) delete ts;
  return result(rc);
}

int thrd_join(thrd_t thread, int* res) {
  void* value = nullptr;
  const int rc = pthread_join(thread, &value);
  if (rc == 0 && res != nullptr) *res = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
  return result(rc);
}

int thrd_detach(thrd_t thread) { return result(pthread_detach(thread)); }

int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if ((type & mtx_recursive) != 0) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  const int rc = pthread_mutex_init(native(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return result(rc);
}
int mtx_lock(mtx_t* m) { return result(pthread_mutex_lock(native(m))); }
int mtx_trylock(mtx_t* m) { return result(pthread_mutex_trylock(native(m))); }
int mtx_unlock(mtx_t* m) { return result(pthread_mutex_unlock(native(m))); }
void mtx_destroy(mtx_t* m) { pthread_mutex_destroy(native(m)); }

int cnd_init(cnd_t* c) { return result(pthread_cond_init(native(c), nullptr)); }
int cnd_signal(cnd_t* c) { return result(pthread_cond_signal(native(c))); }
int cnd_broadcast(cnd_t* c) { return result(pthread_cond_broadcast(native(c))); }
int cnd_wait(cnd_t* c, mtx_t* m) { return result(pthread_cond_wait(native(c), native(m))); }
int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict until) {
  return result(pthread_cond_timedwait(native(c), native(m), until));
}
void cnd_destroy(cnd_t* c) { pthread_cond_destroy(native(c)); }

void call_once(once_flag* flag, void (*func)(void)) { pthread_once(reinterpret_cast<pthread_once_t*>(flag), func); }

// librdkafka's reference counts are atomics in uninstrumented code, so TSan cannot see that they
// order the free (or the lock destruction) after the last use: ignore those calls made by the
// library itself. For the same reason it cannot see that a lock initialised on one thread is handed
// to another through such an atomic before that thread takes it: the mtx_init/mtx_lock pair (only
// librdkafka calls these C11 functions) is ignored too, and so is the other end of a lock's life, a
// destruction the last reference orders after another thread's unlock (seen with a producer whose
// topic authorisation failed). Our own locks and data stay checked.
const char* __tsan_default_suppressions() {
  return "called_from_lib:librdkafka.so.1\n"
         "race:mtx_init\n"
         "race:mtx_lock\n"
         "race:mtx_unlock\n"
         "race:mtx_destroy\n";
}

}  // extern "C"

#endif
