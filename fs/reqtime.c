/* reqtime.c: see reqtime.h.  The counters are process-wide atomics (one
 * session per daemon), updated with relaxed ordering: each is a counter
 * or a maximum of its own, read for the statistics file only.  A request
 * is counted when it arrives, before its operation replies: once a
 * client's system call has returned, its request is in the count (the
 * time is added after the reply, so it may trail by a moment). */
#include "reqtime.h"
#include "monotime.h"

#include <inttypes.h>
#include <stdatomic.h>

#define REQTIME_OPS(X) \
	X(lookup) X(forget) X(forget_multi) X(getattr) X(setattr) \
	X(readlink) X(statfs) X(mknod) X(mkdir) X(symlink) X(link) \
	X(unlink) X(rmdir) X(rename) X(opendir) X(readdir) X(readdirplus) \
	X(releasedir) X(fsyncdir) X(create) X(open) X(read) X(write_buf) \
	X(flush) X(release) X(fsync) X(fallocate) X(lseek)

enum reqtime_op {
#define REQTIME_ENUM(op) RT_##op,
	REQTIME_OPS(REQTIME_ENUM)
	RT_COUNT
};

static const char *const op_names[RT_COUNT] = {
#define REQTIME_NAME(op) #op,
	REQTIME_OPS(REQTIME_NAME)
};

/* atomics: see the top */
static _Atomic uint64_t op_requests[RT_COUNT];
static _Atomic uint64_t op_usecs[RT_COUNT];
static _Atomic uint64_t op_max_usecs[RT_COUNT];

/* a request of op arrives: count it, return its start time */
static int64_t arrive(enum reqtime_op op)
{
	atomic_fetch_add_explicit(&op_requests[op], 1, memory_order_relaxed);
	return monotime_us();
}

/* a request of op that arrived at start has replied and returned */
static void note(enum reqtime_op op, int64_t start)
{
	int64_t d = monotime_us() - start;
	uint64_t usecs = d < 0 ? 0 : (uint64_t)d;
	uint64_t max = atomic_load_explicit(&op_max_usecs[op],
					    memory_order_relaxed);

	/* the maximum first: a reader that sees the time in the total
	   sees it in the maximum too */
	while (usecs > max &&
	       !atomic_compare_exchange_weak_explicit(&op_max_usecs[op], &max,
						      usecs,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
	atomic_fetch_add_explicit(&op_usecs[op], usecs, memory_order_relaxed);
}

/* timed_OP: oboxfs_ops.OP, timed */
#define TIMED(op, params, args) \
static void timed_##op params \
{ \
	int64_t start = arrive(RT_##op); \
	oboxfs_ops.op args; \
	note(RT_##op, start); \
}

TIMED(lookup, (fuse_req_t req, fuse_ino_t parent, const char *name),
      (req, parent, name))
TIMED(forget, (fuse_req_t req, fuse_ino_t ino, uint64_t nlookup),
      (req, ino, nlookup))
TIMED(forget_multi, (fuse_req_t req, size_t count,
		     struct fuse_forget_data *forgets),
      (req, count, forgets))
TIMED(getattr, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(setattr, (fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		int to_set, struct fuse_file_info *fi),
      (req, ino, attr, to_set, fi))
TIMED(readlink, (fuse_req_t req, fuse_ino_t ino), (req, ino))
TIMED(statfs, (fuse_req_t req, fuse_ino_t ino), (req, ino))
TIMED(mknod, (fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode, dev_t rdev),
      (req, parent, name, mode, rdev))
TIMED(mkdir, (fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode),
      (req, parent, name, mode))
TIMED(symlink, (fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name),
      (req, link, parent, name))
TIMED(link, (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname),
      (req, ino, newparent, newname))
TIMED(unlink, (fuse_req_t req, fuse_ino_t parent, const char *name),
      (req, parent, name))
TIMED(rmdir, (fuse_req_t req, fuse_ino_t parent, const char *name),
      (req, parent, name))
TIMED(rename, (fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags),
      (req, parent, name, newparent, newname, flags))
TIMED(opendir, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(readdir, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi),
      (req, ino, size, off, fi))
TIMED(readdirplus, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi),
      (req, ino, size, off, fi))
TIMED(releasedir, (fuse_req_t req, fuse_ino_t ino,
		   struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(fsyncdir, (fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi),
      (req, ino, datasync, fi))
TIMED(create, (fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi),
      (req, parent, name, mode, fi))
TIMED(open, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(read, (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi),
      (req, ino, size, off, fi))
TIMED(write_buf, (fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
		  off_t off, struct fuse_file_info *fi),
      (req, ino, bufv, off, fi))
TIMED(flush, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(release, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(fsync, (fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi),
      (req, ino, datasync, fi))
TIMED(fallocate, (fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		  off_t length, struct fuse_file_info *fi),
      (req, ino, mode, offset, length, fi))
TIMED(lseek, (fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
	      struct fuse_file_info *fi),
      (req, ino, off, whence, fi))

void reqtime_ops_get(struct fuse_lowlevel_ops *ops_r)
{
	*ops_r = oboxfs_ops;
#define REQTIME_MEMBER(op) ops_r->op = timed_##op;
	REQTIME_OPS(REQTIME_MEMBER)
}

void reqtime_print(FILE *f)
{
	uint64_t n[RT_COUNT], usecs[RT_COUNT], max[RT_COUNT];
	uint64_t total = 0, max_all = 0;

	/* each counter read once: the lines agree with each other */
	for (unsigned int op = 0; op < RT_COUNT; op++) {
		n[op] = atomic_load_explicit(&op_requests[op],
					     memory_order_relaxed);
		usecs[op] = atomic_load_explicit(&op_usecs[op],
						 memory_order_relaxed);
		max[op] = atomic_load_explicit(&op_max_usecs[op],
					       memory_order_relaxed);
		total += n[op];
		if (max[op] > max_all)
			max_all = max[op];
	}
	fprintf(f, "fuse_requests %" PRIu64 "\n", total);
	fprintf(f, "fuse_request_max_usecs %" PRIu64 "\n", max_all);
	for (unsigned int op = 0; op < RT_COUNT; op++) {
		if (n[op] == 0)
			continue;
		fprintf(f, "fuse_%s_requests %" PRIu64 "\n", op_names[op],
			n[op]);
		fprintf(f, "fuse_%s_usecs %" PRIu64 "\n", op_names[op],
			usecs[op]);
		fprintf(f, "fuse_%s_max_usecs %" PRIu64 "\n", op_names[op],
			max[op]);
	}
}
