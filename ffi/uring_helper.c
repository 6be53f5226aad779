/*
 * uring helper: the thinnest possible bridge from Deno FFI to the io_uring system calls.
 *
 * Every function returns a non-negative result on success and -errno on failure, so the
 * caller never has to read the thread-local errno (which, for a `nonblocking` FFI call, lives
 * on another thread). The helper knows nothing of rings: the TypeScript core owns them.
 *
 * Parameters are 32-bit wherever the value fits, because Deno's FFI fast path handles 32-bit
 * integers far more cheaply than 64-bit ones given as JS numbers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

/* IORING_ENTER_EXT_ARG (5.11): the last argument is a struct io_uring_getevents_arg. */
#define HELPER_ENTER_EXT_ARG 8u

struct helper_timespec {
  int64_t tv_sec;
  int64_t tv_nsec;
};

/* struct io_uring_getevents_arg (include/uapi/linux/io_uring.h), 24 bytes. */
struct helper_getevents_arg {
  uint64_t sigmask;
  uint32_t sigmask_sz;
  uint32_t min_wait_usec; /* "pad" before 6.12; must be zero there */
  uint64_t ts;
};

static int64_t result(long r) { return r < 0 ? -(int64_t)errno : (int64_t)r; }

/*
 * Memory the kernel may still be reading or writing as its thread exits (uring_mmap_anon_held):
 * the statx structs and data buffers of the copies on the module's own rings. An operation an
 * io-wq worker of the thread is running goes on after the thread's JavaScript is gone, and its
 * memory must outlive it: the kernel stops the thread's io-wq workers only in the thread's own
 * exit (do_exit), after the destructor below has run, and an operation linked behind one that
 * completes then fails instead of running. So such memory is not unmapped as the thread exits: it
 * waits here with the thread's id (a grave), and is unmapped by the first sweep (any later
 * uring_mmap_anon_held, or another thread's exit) that finds the thread gone. Were it unmapped at
 * once, a worker's late write could land in whatever the process mapped there next.
 */
struct grave {
  uintptr_t addr;
  size_t length;
  pid_t tid;
};
static pthread_mutex_t graves_lock = PTHREAD_MUTEX_INITIALIZER;
static struct grave *graves;
static size_t grave_count, grave_capacity;

/* Whether thread `tid` of this process is gone (its exit, do_exit included, has finished). */
static int thread_gone(pid_t tid) {
  return syscall(SYS_tgkill, getpid(), tid, 0) < 0 && errno == ESRCH;
}

/* Unmaps the graves whose thread is gone; returns how many are left. */
static size_t sweep_graves(void) {
  if (__atomic_load_n(&grave_count, __ATOMIC_ACQUIRE) == 0) return 0;
  pthread_mutex_lock(&graves_lock);
  for (size_t i = grave_count; i-- > 0;) {
    if (!thread_gone(graves[i].tid)) continue;
    munmap((void *)graves[i].addr, graves[i].length);
    graves[i] = graves[grave_count - 1];
    __atomic_store_n(&grave_count, grave_count - 1, __ATOMIC_RELEASE);
  }
  size_t left = grave_count;
  pthread_mutex_unlock(&graves_lock);
  return left;
}

/* Puts a mapping of an exiting thread's in a grave; false when there is no memory for it. */
static int bury(uintptr_t addr, size_t length, pid_t tid) {
  pthread_mutex_lock(&graves_lock);
  int ok = 1;
  if (grave_count == grave_capacity) {
    size_t capacity = grave_capacity == 0 ? 16 : grave_capacity * 2;
    struct grave *grown = realloc(graves, capacity * sizeof graves[0]);
    if (grown == NULL) {
      ok = 0;
    } else {
      graves = grown;
      grave_capacity = capacity;
    }
  }
  if (ok) {
    graves[grave_count] = (struct grave){addr, length, tid};
    __atomic_store_n(&grave_count, grave_count + 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&graves_lock);
  return ok;
}

/*
 * What each thread made here and has not released, to be let go as it exits. That is a Deno
 * Worker terminated before it closed its rings: `terminate()` ends the Worker without running any
 * more of its code, and Deno closes the Worker's own resources, but these it does not know of
 * (they stayed open, with an SQPOLL kernel thread each, until the process exited).
 * - fds: ring and pipe fds, and the files a Worker's copy opened (uring_hold_fd): closed. Only
 *   what is created and released through this file is listed, so a number released elsewhere
 *   can never be closed twice.
 * - ring maps (uring_mmap_held): the rings the module makes for its own copies, whose memory no
 *   JavaScript outside its thread can reach, so nothing can use it once that thread is gone:
 *   unmapped (the kernel holds what it still needs of a ring's pages itself). A Worker terminated
 *   while such a ring lingers then leaves nothing.
 * - kernel memory (uring_mmap_anon_held): those copies' statx structs and buffers, buried (see
 *   graves; without memory for a grave it stays mapped for good, which is safe).
 * Other memory is never unmapped here: a ring's ArrayBuffer may have been transferred to another
 * thread, which still uses it (unmapping it under that thread was a segfault). So a terminated
 * Worker's other mappings stay, and with them its rings: the kernel tears a ring down only once
 * nothing maps it either. For those this gives back the fd numbers, not the rings. Not on a hot
 * path.
 */
enum held_kind { HELD_FD, HELD_RING_MAP, HELD_KERNEL_MEMORY };
struct held_item {
  enum held_kind kind;
  int32_t fd;     /* HELD_FD */
  uintptr_t addr; /* the maps */
  size_t length;
};
struct held_list {
  size_t count, capacity;
  struct held_item items[];
};
static pthread_key_t held_key;
static pthread_once_t held_once = PTHREAD_ONCE_INIT;
static int held_ready;

/* Runs as a thread exits with something listed: lets it go (see above), then sweeps the graves. */
static void release_held(void *p) {
  struct held_list *list = p;
  pid_t tid = (pid_t)syscall(SYS_gettid);
  for (size_t i = 0; i < list->count; i++) {
    struct held_item *item = &list->items[i];
    if (item->kind == HELD_FD) close(item->fd);
    else if (item->kind == HELD_RING_MAP) munmap((void *)item->addr, item->length);
    else (void)bury(item->addr, item->length, tid);
  }
  free(list);
  (void)sweep_graves();
}

static void make_held_key(void) { held_ready = pthread_key_create(&held_key, release_held) == 0; }

/* Lists `item` for this thread; false when there is no memory to list it in. */
static int hold_item(struct held_item item) {
  pthread_once(&held_once, make_held_key);
  if (!held_ready) return 0;
  struct held_list *list = pthread_getspecific(held_key);
  if (list == NULL || list->count == list->capacity) {
    size_t capacity = list == NULL ? 8 : list->capacity * 2;
    struct held_list *grown = realloc(list, sizeof *list + capacity * sizeof list->items[0]);
    if (grown == NULL) return 0;
    if (list == NULL) grown->count = 0;
    grown->capacity = capacity;
    list = grown;
    pthread_setspecific(held_key, list);
  }
  list->items[list->count++] = item;
  return 1;
}

/* Takes the last item listed as fd `fd` (`is_fd`) or as a mapping at `addr` off this thread's list. */
static void unhold_item(int is_fd, int32_t fd, uintptr_t addr) {
  if (!held_ready) return;
  struct held_list *list = pthread_getspecific(held_key);
  if (list == NULL) return;
  for (size_t i = list->count; i-- > 0;) {
    struct held_item *item = &list->items[i];
    if (is_fd ? item->kind == HELD_FD && item->fd == fd : item->kind != HELD_FD && item->addr == addr) {
      *item = list->items[--list->count];
      return;
    }
  }
}

/* Lists an fd of this thread's (best effort: without memory, it is not closed at exit). */
static void hold(int32_t fd) { (void)hold_item((struct held_item){HELD_FD, fd, 0, 0}); }

/* Takes an fd off this thread's list, if it is there. */
static void unhold(int32_t fd) { unhold_item(1, fd, 0); }

/* Lists a mapping of this thread's (kernel memory or a ring's); false without memory to list it. */
static int hold_map(uintptr_t addr, size_t length, int kernel_memory) {
  return hold_item((struct held_item){kernel_memory ? HELD_KERNEL_MEMORY : HELD_RING_MAP, -1, addr, length});
}

/* Takes a mapping off this thread's list, if it is there. */
static void unhold_map(uintptr_t addr) { unhold_item(0, -1, addr); }

/*
 * Lists `fd`, a file the kernel opened for this thread's copies (an io_uring openat), to be closed
 * if the thread exits with it open (a Worker terminated mid-copy: its JavaScript never closes
 * it). Every close of it must come through uring_close or follow uring_unhold_fd, or the exit
 * would close a number that may be another file's by then.
 */
void uring_hold_fd(int32_t fd) {
  if (fd >= 0) hold(fd);
}

/* Takes `fd` off this thread's list (see uring_hold_fd): call right before closing it elsewhere. */
void uring_unhold_fd(int32_t fd) { unhold(fd); }

/* io_uring_setup(2): returns the ring fd. `params` points at a 120-byte io_uring_params. */
int32_t uring_setup(uint32_t entries, void *params) {
  int32_t fd = (int32_t)result(syscall(__NR_io_uring_setup, entries, params));
  if (fd >= 0) hold(fd);
  return fd;
}

/*
 * io_uring_enter(2) with a NULL last argument. On x86-64 it is one `syscall` instruction: the
 * kernel's return value is already -errno, so there is no trip through libc's variadic
 * syscall() and errno (this is the hot call of every submit and wait; liburing inlines it the
 * same way; ~5 ns a call here). Elsewhere, libc's syscall().
 */
static inline long enter_raw(int32_t fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags) {
#if defined(__x86_64__)
  long r;
  register long r10 __asm__("r10") = (long)flags;
  register long r8 __asm__("r8") = 0;
  register long r9 __asm__("r9") = 0;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "0"((long)__NR_io_uring_enter), "D"((long)fd), "S"((long)to_submit),
                     "d"((long)min_complete), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return r;
#else
  return result(syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, (size_t)0));
#endif
}

/* io_uring_enter(2) without a timeout: returns the number of SQEs consumed. */
int32_t uring_enter(int32_t fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags) {
  return (int32_t)enter_raw(fd, to_submit, min_complete, flags);
}

/*
 * io_uring_enter(2) that waits at most `timeout_us` microseconds (IORING_ENTER_EXT_ARG, 5.11).
 * A negative timeout waits without limit. Returns -ETIME when the timeout expired.
 */
int32_t uring_enter_timeout(int32_t fd, uint32_t to_submit, uint32_t min_complete,
                            uint32_t flags, int32_t timeout_us) {
  struct helper_timespec ts;
  struct helper_getevents_arg arg;
  memset(&arg, 0, sizeof arg);
  if (timeout_us >= 0) {
    ts.tv_sec = timeout_us / 1000000;
    ts.tv_nsec = (int64_t)(timeout_us % 1000000) * 1000;
    arg.ts = (uint64_t)(uintptr_t)&ts;
  }
  return (int32_t)result(syscall(__NR_io_uring_enter, fd, to_submit, min_complete,
                                 flags | HELPER_ENTER_EXT_ARG, &arg, sizeof arg));
}

/* io_uring_register(2). */
int32_t uring_register(int32_t fd, uint32_t opcode, void *arg, uint32_t nr_args) {
  return (int32_t)result(syscall(__NR_io_uring_register, fd, opcode, arg, nr_args));
}

/* mmap(2) of a ring region: returns the address, or -errno. */
int64_t uring_mmap(int32_t fd, uint64_t length, uint64_t offset) {
  void *p = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                 (off_t)offset);
  return p == MAP_FAILED ? -(int64_t)errno : (int64_t)(uintptr_t)p;
}

/*
 * uring_mmap, the mapping also unmapped when this thread exits (see held_list): returns the
 * address, or -errno (-ENOMEM, nothing mapped, when it cannot be listed).
 */
int64_t uring_mmap_held(int32_t fd, uint64_t length, uint64_t offset) {
  int64_t p = uring_mmap(fd, length, offset);
  if (p >= 0 && !hold_map((uintptr_t)p, (size_t)length, 0)) {
    munmap((void *)(uintptr_t)p, (size_t)length);
    return -ENOMEM;
  }
  return p;
}

/*
 * Takes a mapping of uring_mmap_held's off this thread's list without unmapping it: its memory
 * was handed to someone else, who may still use it after this thread exits.
 */
void uring_forget_map(uint64_t addr) { unhold_map((uintptr_t)addr); }

/* Anonymous private mmap(2): page-aligned memory for O_DIRECT buffers. */
int64_t uring_mmap_anon(uint64_t length) {
  void *p = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? -(int64_t)errno : (int64_t)(uintptr_t)p;
}

/*
 * Anonymous private memory for the kernel to read or write on this thread's behalf (a copy's
 * statx structs and buffers), listed to be unmapped once this thread is gone (see graves):
 * returns the address, or -errno (-ENOMEM, nothing mapped, when it cannot be listed). First
 * unmaps the graves of threads already gone.
 */
int64_t uring_mmap_anon_held(uint64_t length) {
  (void)sweep_graves();
  int64_t p = uring_mmap_anon(length);
  if (p >= 0 && !hold_map((uintptr_t)p, (size_t)length, 1)) {
    munmap((void *)(uintptr_t)p, (size_t)length);
    return -ENOMEM;
  }
  return p;
}

/* Sweeps the graves (see above) and returns how many are left: mappings of threads not yet gone. */
int32_t uring_held_graves(void) {
  size_t left = sweep_graves();
  return left > INT32_MAX ? INT32_MAX : (int32_t)left;
}

/* munmap(2) (a mapping of uring_mmap_held's leaves this thread's list first). */
int32_t uring_munmap(uint64_t addr, uint64_t length) {
  unhold_map((uintptr_t)addr);
  return (int32_t)result(munmap((void *)(uintptr_t)addr, (size_t)length));
}

/* close(2) (the fd leaves this thread's list first: close releases it even when it fails). */
int32_t uring_close(int32_t fd) {
  if (fd >= 0) unhold(fd);
  return (int32_t)result(close(fd));
}

/*
 * The soft limit on open file descriptors (getrlimit(RLIMIT_NOFILE)), at most INT32_MAX (also
 * when unlimited), or -errno.
 */
int32_t uring_file_limit(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return -errno;
  return r.rlim_cur == RLIM_INFINITY || r.rlim_cur > INT32_MAX ? INT32_MAX : (int32_t)r.rlim_cur;
}

/*
 * How many file descriptors the process has open (the entries of /proc/self/fd, less the one
 * this call reads it through), or -errno (EMFILE: none free, not even for that one).
 */
int32_t uring_open_files(void) {
  int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -errno;
  char buf[4096] __attribute__((aligned(8)));
  int32_t count = 0;
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n < 0) {
      int e = errno;
      close(dir);
      return -e;
    }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[] */
      unsigned short reclen;
      memcpy(&reclen, buf + off + 16, sizeof reclen);
      if (buf[off + 19] != '.') count++;
      off += reclen;
    }
  }
  close(dir);
  return count - 1;
}

/*
 * pipe2(fds, O_CLOEXEC): fills fds[0] (read end) and fds[1] (write end) and returns the pipe's
 * capacity in bytes (F_GETPIPE_SZ), which is smaller than the default 64 KiB when the user has
 * passed fs.pipe-user-pages-soft. When `size` > 0 it first asks for that capacity
 * (F_SETPIPE_SZ); a refusal (above fs.pipe-max-size or the user's pipe allowance) keeps the
 * default. Nothing is left open on failure.
 */
int32_t uring_pipe_sized(int32_t *fds, int32_t size) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  if (size > 0) (void)fcntl(p[1], F_SETPIPE_SZ, size);
  int capacity = fcntl(p[0], F_GETPIPE_SZ);
  if (capacity < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    return -e;
  }
  fds[0] = p[0];
  fds[1] = p[1];
  hold(p[0]);
  hold(p[1]);
  return capacity;
}

/* 1 when the calling thread is the process's first (its tid is the pid), else 0. */
int32_t uring_is_main_thread(void) { return syscall(SYS_gettid) == getpid(); }

/* A full (sequentially consistent) memory fence. */
void uring_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* lseek(2): with SEEK_DATA/SEEK_HOLE it finds a sparse file's data (io_uring has no lseek). */
int64_t uring_lseek(int32_t fd, int64_t offset, int32_t whence) { return result(lseek(fd, offset, whence)); }

/* utimensat(2): sets a file's times to the nanosecond (`times`: two struct timespec). */
int32_t uring_utimensat(int32_t dirfd, const char *path, const void *times, int32_t flags) {
  return (int32_t)result(syscall(__NR_utimensat, dirfd, path, times, flags));
}

/* fchmodat(2) on the calling thread: a copy's mode, without a trip through Deno's thread pool. */
int32_t uring_fchmodat(int32_t dirfd, const char *path, uint32_t mode) {
  return (int32_t)result(syscall(__NR_fchmodat, dirfd, path, mode));
}

/* renameat2(2) on the calling thread: a copy put in place without a trip through an io-wq worker. */
int32_t uring_renameat2(int32_t olddirfd, const char *from, int32_t newdirfd, const char *to, uint32_t flags) {
  return (int32_t)result(syscall(__NR_renameat2, olddirfd, from, newdirfd, to, flags));
}

/*
 * statx(2) on the calling thread: what the walk of a tree copy looks at each entry with (io_uring's
 * STATX goes to a worker thread), with birth times to the nanosecond, unlike Deno's lstat.
 */
int32_t uring_statx(int32_t dirfd, const char *path, int32_t flags, uint32_t mask, void *out) {
  return (int32_t)result(syscall(__NR_statx, dirfd, path, flags, mask, out));
}

/*
 * Keeps this library mapped for the life of the process (RTLD_NODELETE, however it was built). A
 * wait runs in the helper on Deno's thread pool; when the program ends while one is in progress,
 * Deno closes the library, and unmapping it would leave that thread returning into unmapped
 * memory: a segfault instead of the program's exit code.
 */
__attribute__((constructor)) static void uring_pin(void) {
  Dl_info info;
  if (dladdr((void *)uring_pin, &info) != 0 && info.dli_fname != NULL) {
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  }
}
