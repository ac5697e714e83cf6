/* reqtime.h: how long the daemon takes over each FUSE request.  The
 * session runs the operations of reqtime_ops_get(): every operation of
 * oboxfs_ops (fsops.c), wrapped in one that counts, per operation, the requests, their
 * total and their longest time in the daemon: from the call of the
 * operation to its return (every operation replies before it returns).
 * The time a request waited in the kernel before (a directory's lock, the
 * rename mutex) is not in it.  A request is counted as it arrives, so a
 * client whose call has returned finds it counted; its time is added once
 * the operation returns, a moment after its reply.
 */
#ifndef OBOXFS_REQTIME_H
#define OBOXFS_REQTIME_H

#include "fs.h"

#include <stdio.h>

/* oboxfs_ops with every request operation timed (init as it is) */
void reqtime_ops_get(struct fuse_lowlevel_ops *ops_r);

/* the counters as lines of the statistics file: "fuse_requests N",
   "fuse_request_max_usecs N" (the longest request of any operation), then
   for each operation that had requests "fuse_OP_requests N",
   "fuse_OP_usecs N" (in total) and "fuse_OP_max_usecs N" */
void reqtime_print(FILE *f);

#endif
