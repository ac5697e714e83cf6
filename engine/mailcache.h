/* mailcache.h: the daemon's local cache of mail objects, CACHE_DIR/mail/:
 * a thin wrapper over the size-capped LRU cache of cachedir/ (cachedir.h,
 * docs/caches.md) that logs its failures with obox_log().
 *
 * Each cached mail is a file holding exactly the object's bytes, published
 * by rename (never partial); concurrent misses of one object fetch it once;
 * the bytes on disk stay at or under the cap (least recently used go first).
 */
#ifndef OBOXFS_MAILCACHE_H
#define OBOXFS_MAILCACHE_H

#include "cachedir.h"

#include <stdint.h>

struct objstore;
struct mailcache;

/* dir is created if missing and scanned (see cachedir_init()); cap is the
   byte cap (> 0).  Returns 0, or -1 with *error_r. */
int mailcache_init(const char *dir, uint64_t cap, struct objstore *store,
		   struct mailcache **mc_r, const char **error_r);
void mailcache_deinit(struct mailcache **mc);

/* Open (O_RDONLY) the cached bytes of the mail object key, expected to be
   size bytes, fetching them on a miss.  Returns 0 and *fd_r, or -1 with
   errno (EIO if the store fails or returns a different size, ENOSPC,
   ENOENT: see cachedir_open()); the reason is logged. */
int mailcache_open(struct mailcache *mc, const char *key, uint64_t size,
		   int *fd_r);
/* Put the first size bytes of fd in the cache as key's object.  Returns 0,
   or -1 with errno (the reason is logged). */
int mailcache_add_fd(struct mailcache *mc, const char *key, int fd,
		     uint64_t size);
/* Forget key's cached bytes (open fds keep working). */
void mailcache_remove(struct mailcache *mc, const char *key);
/* The cache disk is full: evict at least bytes (cachedir_shrink()). */
int mailcache_shrink(struct mailcache *mc, uint64_t bytes);

void mailcache_get_stats(struct mailcache *mc, struct cachedir_stats *stats_r);

#endif
