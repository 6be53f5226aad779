/*
 * C peer for bench/read.ts: random reads of BS bytes at queue depth QD from a (cached) file,
 * through liburing, with or without SQPOLL.
 *
 *   randread FILE QD SQPOLL(0|1) SECONDS BS
 *
 * Keeps QD reads in flight: every completion is checked (res == BS) and its slot refilled with a
 * read at a new random BS-aligned offset. Without SQPOLL each round is one
 * io_uring_submit_and_wait(1) (cached reads complete inside it); with SQPOLL each refill is
 * published at once (a release store of the SQ tail), and a round is io_uring_submit() (wakes the
 * thread if it sleeps) and a spin on the CQ tail (bounded: then a blocking wait). Prints one JSON
 * line: ops, seconds, opsPerSec.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Spins on the CQ tail before falling back to a blocking wait (same as bench/read.ts). */
#define SPIN_LIMIT (1u << 20)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of the whole process (an SQ poll thread included), in seconds. */
static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t rng = 0x9e3779b9u;
static uint32_t next(void) { /* xorshift32 */
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: randread FILE QD SQPOLL(0|1) SECONDS BS\n");
    return 2;
  }
  const char *path = argv[1];
  unsigned qd = (unsigned)atoi(argv[2]);
  int sqpoll = atoi(argv[3]);
  double seconds = atof(argv[4]);
  unsigned bs = (unsigned)atoi(argv[5]);

  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  off_t size = lseek(fd, 0, SEEK_END);
  uint32_t blocks = (uint32_t)(size / bs);
  if (blocks == 0) {
    fprintf(stderr, "%s is smaller than one block\n", path);
    return 1;
  }
  char *bufs = aligned_alloc(4096, (size_t)qd * bs);

  struct io_uring ring;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  if (sqpoll) {
    p.flags = IORING_SETUP_SQPOLL;
    p.sq_thread_idle = 50;
  }
  /* Twice QD: under SQPOLL a CQE can be visible before the kernel moves the SQ head past it. */
  int r = io_uring_queue_init_params(2 * qd, &ring, &p);
  if (r < 0) {
    fprintf(stderr, "io_uring_queue_init_params: %s\n", strerror(-r));
    return 1;
  }
  /* Enter by registered index (5.18), as IoUring does by default: the kernel skips the fd
   * lookup of every io_uring_enter. On a kernel without it the ring keeps its fd. */
  io_uring_register_ring_fd(&ring);

  /* Under SQPOLL the file is registered and read as fixed file 0, as fio does (and bench/read.ts):
   * the kernel thread then skips a file lookup per read. */
  int target = fd;
  unsigned char fileFlags = 0;
  if (sqpoll) {
    r = io_uring_register_files(&ring, &fd, 1);
    if (r < 0) {
      fprintf(stderr, "io_uring_register_files: %s\n", strerror(-r));
      return 1;
    }
    target = 0;
    fileFlags = IOSQE_FIXED_FILE;
  }

  for (unsigned i = 0; i < qd; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, target, bufs + (size_t)i * bs, bs, (uint64_t)(next() % blocks) * bs);
    sqe->flags |= fileFlags;
    sqe->user_data = i;
  }
  unsigned long long ops = 0;
  double start = now(), end = start + seconds, t = start, cpu0 = cpu();
  for (unsigned long long round = 0;; round++) {
    if (sqpoll) {
      io_uring_submit(&ring);
      /* Spin on the CQ tail; if the SQ thread is starved of CPU, wait in the kernel instead. */
      for (unsigned spins = 0; io_uring_cq_ready(&ring) == 0; spins++) {
        if (spins == SPIN_LIMIT) {
          struct io_uring_cqe *c;
          io_uring_wait_cqe(&ring, &c);
          break;
        }
      }
    } else {
      r = io_uring_submit_and_wait(&ring, 1);
      if (r < 0) {
        fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
        return 1;
      }
    }
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->res != (int)bs) {
        fprintf(stderr, "read returned %d\n", cqe->res);
        return 1;
      }
      unsigned slot = (unsigned)cqe->user_data;
      struct io_uring_sqe *sqe;
      while ((sqe = io_uring_get_sqe(&ring)) == NULL) io_uring_submit(&ring);
      io_uring_prep_read(sqe, target, bufs + (size_t)slot * bs, bs, (uint64_t)(next() % blocks) * bs);
      sqe->flags |= fileFlags;
      sqe->user_data = slot;
      /* SQPOLL: publish each request at once with a release store of the SQ tail (no fence, no
       * system call), as bench/read.ts does with flushSq() and fio does per request; the
       * io_uring_submit() that starts each round wakes the thread if it went to sleep. */
      if (sqpoll) io_uring_smp_store_release(ring.sq.ktail, ring.sq.sqe_tail);
      n++;
    }
    io_uring_cq_advance(&ring, n);
    ops += n;
    if ((round & 63) == 0 && (t = now()) >= end) break;
  }
  double cpuSeconds = cpu() - cpu0;
  io_uring_queue_exit(&ring);
  close(fd);
  double elapsed = t - start;
  printf("{\"ops\":%llu,\"seconds\":%.6f,\"opsPerSec\":%.1f,\"cpuSeconds\":%.6f}\n", ops, elapsed,
         ops / elapsed, cpuSeconds);
  return 0;
}
