/*
 * C peer for bench/cp_tree.ts: the tree copy of `deno task cp -r` done by the same io_uring
 * chains in C over liburing, so the bench can show what the kernel side costs on its own.
 *
 *   tree_copy SRC DST [LANES]
 *
 * The walk is depth first: each directory is created (mkdir, the source's mode), its entries are
 * looked at with statx, its regular files are started, then its subdirectories are walked. A file
 * that fits in a lane's pipe is copied by one linked chain of seven SQEs, as src/copy_small.ts
 * writes it: openat(src) and openat(dst, O_CREAT | O_EXCL) into the lane's two direct
 * descriptors, splice(src -> pipe), splice(pipe -> dst), close, close, then statx(src) (inode
 * number and birth time, compared with the walk's look: a source replaced meanwhile is an error
 * here); every member but the last is IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS, all are
 * IOSQE_ASYNC, so a file costs one CQE. The ring has the flags `cp`'s has (COOP_TASKRUN and
 * TASKRUN_FLAG: no interrupt of this thread per completion).
 * LANES chains (default 32, as the 192-operation queue depth of `cp` gives) are in flight at
 * once; when none is free it submits and waits for one. Bigger files are copied synchronously
 * with sendfile (the bench's tree has none). Symlinks and other entries are skipped with a note.
 * Any failure ends the program with status 1 and the failing path or errno.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LANES 256
#define CHAIN_FLAGS (IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS | IOSQE_ASYNC)

struct lane {
  int pipe[2];
  unsigned capacity;
  char src[PATH_MAX];
  char dst[PATH_MAX];
  /* The walk's look at the source, and the chain's. */
  struct statx looked;
  struct statx now;
};

static struct io_uring ring;
static struct lane lanes[MAX_LANES];
static int free_lanes[MAX_LANES];
static int free_count;
static int lane_count;

static void die(const char *what, const char *path, int err) {
  fprintf(stderr, "tree_copy: %s %s: %s\n", what, path, strerror(err));
  exit(1);
}

/* Reaps every ready CQE (waiting for one first when `wait`): each is a chain's last member. */
static void reap(int wait) {
  struct io_uring_cqe *cqe;
  if (wait) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0) die("io_uring_submit_and_wait", "", -r);
  }
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&ring, head, cqe) {
    int lane = (int)cqe->user_data;
    if (cqe->res < 0) die("chain of", lanes[lane].src, -cqe->res);
    const struct statx *a = &lanes[lane].looked, *b = &lanes[lane].now;
    if (a->stx_ino != b->stx_ino || a->stx_btime.tv_sec != b->stx_btime.tv_sec ||
        a->stx_btime.tv_nsec != b->stx_btime.tv_nsec) {
      die("chain of", lanes[lane].src, ESTALE); /* replaced while it was copied */
    }
    free_lanes[free_count++] = lane;
    seen++;
  }
  io_uring_cq_advance(&ring, seen);
}

/* The next SQE (the SQ has room: a lane's chain is queued only with seven free entries). */
static struct io_uring_sqe *next_sqe(void) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  if (sqe == NULL) die("io_uring_get_sqe", "", EBUSY);
  return sqe;
}

/* Marks a prepared member of lane `lane`'s chain (prep helpers reset the flags, so after). */
static void member(struct io_uring_sqe *sqe, int lane, unsigned flags) {
  sqe->flags |= flags;
  sqe->user_data = (unsigned)lane;
}

/* Copies a file too big for a pipe, synchronously (not on the bench's tree). */
static void copy_big(const char *src, const char *dst, const struct statx *st) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) die("open", src, errno);
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->stx_mode & 07777);
  if (out < 0) die("open", dst, errno);
  for (off_t done = 0; done < (off_t)st->stx_size;) {
    ssize_t n = sendfile(out, in, &done, st->stx_size - done);
    if (n < 0) die("sendfile", src, errno);
    if (n == 0) break;
  }
  close(in);
  close(out);
}

static void copy_file(const char *src, const char *dst, const struct statx *st) {
  while (free_count == 0) reap(1);
  int l = free_lanes[--free_count];
  struct lane *lane = &lanes[l];
  if (st->stx_size > lane->capacity) {
    free_lanes[free_count++] = l;
    copy_big(src, dst, st);
    return;
  }
  snprintf(lane->src, sizeof lane->src, "%s", src);
  snprintf(lane->dst, sizeof lane->dst, "%s", dst);
  lane->looked = *st;
  unsigned in = 2 * l, out = 2 * l + 1, len = (unsigned)st->stx_size;
  if (io_uring_sq_space_left(&ring) < 7) io_uring_submit(&ring); /* never split a chain */
  struct io_uring_sqe *sqe = next_sqe();
  io_uring_prep_openat_direct(sqe, AT_FDCWD, lane->src, O_RDONLY, 0, in);
  member(sqe, l, CHAIN_FLAGS);
  sqe = next_sqe();
  io_uring_prep_openat_direct(sqe, AT_FDCWD, lane->dst, O_WRONLY | O_CREAT | O_EXCL, st->stx_mode & 07777, out);
  member(sqe, l, CHAIN_FLAGS);
  sqe = next_sqe();
  io_uring_prep_splice(sqe, in, 0, lane->pipe[1], -1, len, SPLICE_F_FD_IN_FIXED);
  member(sqe, l, CHAIN_FLAGS);
  sqe = next_sqe();
  io_uring_prep_splice(sqe, lane->pipe[0], -1, out, 0, len, 0);
  member(sqe, l, CHAIN_FLAGS | IOSQE_FIXED_FILE);
  sqe = next_sqe();
  io_uring_prep_close_direct(sqe, in);
  member(sqe, l, CHAIN_FLAGS);
  sqe = next_sqe();
  io_uring_prep_close_direct(sqe, out);
  member(sqe, l, CHAIN_FLAGS);
  sqe = next_sqe();
  io_uring_prep_statx(sqe, AT_FDCWD, lane->src, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &lane->now);
  member(sqe, l, IOSQE_ASYNC);
  reap(0);
}

static void walk(const char *src, const char *dst, mode_t mode) {
  if (mkdir(dst, (mode & 07777) | 0700) < 0) die("mkdir", dst, errno);
  DIR *dir = opendir(src);
  if (dir == NULL) die("opendir", src, errno);
  char (*subdirs)[NAME_MAX + 1] = NULL;
  mode_t *modes = NULL;
  size_t count = 0, room = 0;
  char a[PATH_MAX], b[PATH_MAX];
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(a, sizeof a, "%s/%s", src, e->d_name);
    snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
    struct statx st;
    if (statx(AT_FDCWD, a, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &st) < 0) {
      die("statx", a, errno);
    }
    if (S_ISREG(st.stx_mode)) {
      copy_file(a, b, &st);
    } else if (S_ISDIR(st.stx_mode)) {
      if (count == room) {
        room = room ? 2 * room : 16;
        subdirs = realloc(subdirs, room * sizeof *subdirs);
        modes = realloc(modes, room * sizeof *modes);
        if (subdirs == NULL || modes == NULL) die("realloc", src, ENOMEM);
      }
      snprintf(subdirs[count], sizeof subdirs[count], "%s", e->d_name);
      modes[count++] = st.stx_mode;
    } else {
      fprintf(stderr, "tree_copy: skipped %s (not a regular file or directory)\n", a);
    }
  }
  closedir(dir);
  for (size_t i = 0; i < count; i++) {
    snprintf(a, sizeof a, "%s/%s", src, subdirs[i]);
    snprintf(b, sizeof b, "%s/%s", dst, subdirs[i]);
    walk(a, b, modes[i]);
  }
  free(subdirs);
  free(modes);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: tree_copy SRC DST [LANES]\n");
    return 2;
  }
  lane_count = argc == 4 ? atoi(argv[3]) : 32;
  if (lane_count < 1 || lane_count > MAX_LANES) {
    fprintf(stderr, "tree_copy: LANES must be 1..%d\n", MAX_LANES);
    return 2;
  }
  int r = io_uring_queue_init(256, &ring, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
  if (r < 0) die("io_uring_queue_init", "", -r);
  r = io_uring_register_files_sparse(&ring, 2 * lane_count);
  if (r < 0) die("io_uring_register_files_sparse", "", -r);
  for (int l = 0; l < lane_count; l++) {
    if (pipe2(lanes[l].pipe, O_CLOEXEC) < 0) die("pipe2", "", errno);
    int capacity = fcntl(lanes[l].pipe[0], F_GETPIPE_SZ);
    if (capacity < 0) die("fcntl(F_GETPIPE_SZ)", "", errno);
    lanes[l].capacity = (unsigned)capacity;
    free_lanes[free_count++] = l;
  }
  struct statx root;
  if (statx(AT_FDCWD, argv[1], 0, STATX_TYPE | STATX_MODE, &root) < 0) die("statx", argv[1], errno);
  if (!S_ISDIR(root.stx_mode)) die("walk", argv[1], ENOTDIR);
  walk(argv[1], argv[2], root.stx_mode);
  while (free_count < lane_count) reap(1);
  io_uring_queue_exit(&ring);
  return 0;
}
