/*
 * C peer for bench/nop.ts: NOP round trips through liburing, batch B, with or without SQPOLL.
 *
 *   nop BATCH SQPOLL(0|1) SECONDS
 *
 * Each round queues BATCH NOPs, submits them and reaps BATCH completions (reading user_data and
 * res of each). Without SQPOLL a round is one io_uring_submit_and_wait(); with SQPOLL it is a
 * tail store (liburing wakes the SQ thread only when it sleeps) and a spin on the CQ tail
 * (bounded: then a blocking wait), the same protocol as the TypeScript side. Prints one JSON line: ops, seconds, opsPerSec.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Spins on the CQ tail before falling back to a blocking wait (same as bench/nop.ts). */
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

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: nop BATCH SQPOLL(0|1) SECONDS\n");
    return 2;
  }
  unsigned batch = (unsigned)atoi(argv[1]);
  int sqpoll = atoi(argv[2]);
  double seconds = atof(argv[3]);
  unsigned entries = batch < 64 ? 64 : batch;

  struct io_uring ring;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  if (sqpoll) {
    p.flags = IORING_SETUP_SQPOLL;
    p.sq_thread_idle = 50;
  }
  int r = io_uring_queue_init_params(entries, &ring, &p);
  if (r < 0) {
    fprintf(stderr, "io_uring_queue_init_params: %s\n", strerror(-r));
    return 1;
  }
  /* Enter by registered index (5.18), as IoUring does by default: the kernel skips the fd
   * lookup of every io_uring_enter. On a kernel without it the ring keeps its fd. */
  io_uring_register_ring_fd(&ring);

  unsigned long long ops = 0, sum = 0;
  double start = now(), end = start + seconds, t = start, cpu0 = cpu();
  for (unsigned long long round = 0;; round++) {
    for (unsigned i = 0; i < batch; i++) {
      struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
      io_uring_prep_nop(sqe);
      sqe->user_data = i;
    }
    if (sqpoll) {
      io_uring_submit(&ring);
      /* Spin on the CQ tail; if the SQ thread is starved of CPU, wait in the kernel instead. */
      for (unsigned spins = 0; io_uring_cq_ready(&ring) < batch; spins++) {
        if (spins == SPIN_LIMIT) {
          struct io_uring_cqe *c;
          io_uring_wait_cqe_nr(&ring, &c, batch);
          break;
        }
      }
    } else {
      r = io_uring_submit_and_wait(&ring, batch);
      if (r < 0) {
        fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
        return 1;
      }
    }
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      sum += cqe->user_data + (unsigned)cqe->res;
      n++;
    }
    io_uring_cq_advance(&ring, n);
    ops += n;
    if ((round & 63) == 0 && (t = now()) >= end) break;
  }
  double cpuSeconds = cpu() - cpu0;
  io_uring_queue_exit(&ring);
  double elapsed = t - start;
  printf("{\"ops\":%llu,\"seconds\":%.6f,\"opsPerSec\":%.1f,\"cpuSeconds\":%.6f,\"check\":%llu}\n", ops,
         elapsed, ops / elapsed, cpuSeconds, sum);
  return 0;
}
