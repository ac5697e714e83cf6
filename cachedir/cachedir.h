/* cachedir.h: a size-capped LRU cache of immutable mail objects on local
 * disk, CACHE_DIR/<2 hex>/<32 hex id>.<16 hex checksum>.
 *
 * Each cache file holds exactly the object's bytes.  A miss is fetched from
 * the store into a temporary file that is renamed into place (never a partial
 * file), once however many threads miss it at the same time.  The bytes on
 * disk never exceed the cap by more than the in-flight unlinks of evicted
 * files (see docs/caches.md): space is reserved before anything is written.
 * After a restart, entries are rebuilt from the directory (mtime order) and
 * each is checked against the checksum in its name before it is first served.
 * All functions are thread-safe.
 */
#ifndef OBOXFS_CACHEDIR_H
#define OBOXFS_CACHEDIR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

struct objstore;
struct cachedir;

struct cachedir_stats {
	uint64_t entries, bytes, cap;
	uint64_t reserved;	/* bytes reserved by writes in progress */
	uint64_t hits, misses, evictions, fetch_errors;
	uint64_t memory;	/* bytes of bookkeeping (entries + buckets) */
};

/* Parse "1234", "512K", "100M", "1G", "2T" (binary units, case-insensitive,
   optional trailing "B"/"iB").  Returns 0, or -1 with *error_r. */
int cachedir_parse_size(const char *str, uint64_t *bytes_r,
			const char **error_r);

/* dir is created if missing and scanned (leftover temporary files are
   deleted, entries over cap evicted).  cap = 0 is refused.  Returns 0, or -1
   with *error_r. */
int cachedir_init(const char *dir, uint64_t cap, struct objstore *store,
		  struct cachedir **cd_r, const char **error_r);
void cachedir_deinit(struct cachedir **cd);

/* Open (O_RDONLY) the cached bytes of object key, expected to be size bytes,
   fetching them on a miss.  An object larger than the cap is served from an
   anonymous memory file, not cached, and so is an object that does not fit
   on the cache disk even after evicting everything (a disk full of other
   data).  Returns 0 and *fd_r, or -1 with errno (EIO: the store failed or
   returned another size; CACHEDIR_ERR_MISSING: the store does not have
   the object; ENOENT: removed while fetched) and a message in
   cachedir_error(). */
#define CACHEDIR_ERR_MISSING ENODATA
int cachedir_open(struct cachedir *cd, const char *key, uint64_t size,
		  int *fd_r);
/* Put the first size bytes of fd in the cache as key's object (an object
   larger than the cap is not cached and 0 returned).  Returns 0 or -1 with
   errno and cachedir_error(). */
int cachedir_add_fd(struct cachedir *cd, const char *key, int fd,
		    uint64_t size);
/* Forget key's cached bytes (open fds keep working; a fetch of it in
   progress does not put it back). */
void cachedir_remove(struct cachedir *cd, const char *key);

/* The disk the cache is on is full (the caller's own write failed with
   ENOSPC): evict least recently used entries holding at least bytes, and
   from then on keep the cache at most as large as what is left (the disk
   is smaller than the cap: the cache must not take back the room; until
   the next cachedir_init()).  Returns 0 if something was (or is being)
   freed, -1 if the cache is empty. */
int cachedir_shrink(struct cachedir *cd, uint64_t bytes);

void cachedir_get_stats(struct cachedir *cd, struct cachedir_stats *stats_r);
/* Prometheus text lines "oboxfs_mailcache_<name> <value>\n" into buf;
   returns the length written (truncated output if it does not fit). */
size_t cachedir_stats_format(const struct cachedir_stats *stats,
			     char *buf, size_t size);

/* The last error message of the calling thread. */
const char *cachedir_error(void);

#endif
