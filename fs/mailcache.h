/* mailcache.h: the local cache of mail objects, CACHE_DIR/mail/<2 hex>/<oid>.
 *
 * Each cached mail is a plain file holding exactly the object's bytes.  A
 * miss is fetched from the store into a temporary file which is renamed into
 * place, so a cache file is always complete; concurrent misses of the same
 * object fetch it once.  All mail-cache file handling lives here so that a
 * size-capped (LRU) cache can replace it.
 */
#ifndef OBOXFS_MAILCACHE_H
#define OBOXFS_MAILCACHE_H

#include <stdint.h>

struct objstore;
struct mailcache;

struct mailcache_stats {
	uint64_t hits, misses, fetch_errors;
};

/* dir is created if missing.  Returns 0, or -1 with *error_r. */
int mailcache_init(const char *dir, struct objstore *store,
		   struct mailcache **mc_r, const char **error_r);
void mailcache_deinit(struct mailcache **mc);

/* Open (O_RDONLY) the cached bytes of the mail object key, expected to be
   size bytes, fetching them on a miss.  Returns 0 and *fd_r, or -1 with
   errno (EIO if the store fails or returns a different size). */
int mailcache_open(struct mailcache *mc, const char *key, uint64_t size,
		   int *fd_r);
/* Put the first size bytes of fd in the cache as key's object. */
int mailcache_add_fd(struct mailcache *mc, const char *key, int fd,
		     uint64_t size);
/* Forget key's cached bytes (open fds keep working). */
void mailcache_remove(struct mailcache *mc, const char *key);

void mailcache_get_stats(struct mailcache *mc, struct mailcache_stats *stats_r);

#endif
