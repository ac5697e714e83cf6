/* metacache.h: the cap on the metacache, CACHE_DIR/meta (CONTRACT.md
 * section 7).
 *
 * Each user's size is what its last load or upload scan saw of its tree
 * (bundle_tree_disk_bytes(), stubs as stub_disk_bytes():
 * users_set_tree_bytes()), so below 90% of the cap no tree is walked but
 * once for a user with neither (at startup, or a new user before its
 * first upload: allocated bytes, du-style); above 90% of the cap, users
 * that changed since their last measurement are walked (what they wrote
 * since counts).  metacache_enforce() runs in the
 * uploader's
 * thread every few seconds.  While the total is above the cap it evicts,
 * least recently accessed first, users that are idle (no open files or
 * directories, no access for metacache_idle seconds): a user with changes
 * not stored yet (or never stored) is uploaded first; then, under the
 * user's locks, its tree is moved to CACHE_DIR/trash and deleted, its
 * in-memory upload state freed and the kernel's dentry for it invalidated,
 * so the next access loads it from the store (userload.h).
 * Users that are not idle are never evicted: if they alone exceed the cap,
 * the cache stays above it (logged, and visible in the stats).
 */
#ifndef OBOXFS_METACACHE_H
#define OBOXFS_METACACHE_H

#include <stdbool.h>
#include <stdint.h>

struct users;
struct ouser;
struct upload_ctx;
struct metacache;

struct metacache_stats {
	uint64_t cap, used;	/* bytes */
	uint64_t evictions, evicted_bytes;
	uint64_t over_cap_busy;	/* enforce runs left above the cap */
	uint64_t walks;		/* users measured by walking their tree */
	unsigned int users_cached;
};

/* Called after a user's tree was moved away (no lock held): invalidate
   the kernel's entry for it. */
typedef void metacache_evicted_cb(const char *user, void *context);

struct metacache *metacache_init(int meta_fd, const char *trash_dir,
				 uint64_t cap, unsigned int idle_secs,
				 metacache_evicted_cb *evicted, void *context);
void metacache_deinit(struct metacache **meta);

/* Measure the users that changed, evict while above the cap. */
void metacache_enforce(struct metacache *meta, struct users *users,
		       struct upload_ctx *upctx);
/* Measure one user now (after a load).  */
void metacache_measure(struct metacache *meta, struct ouser *user);

void metacache_get_stats(struct metacache *meta, struct users *users,
			 struct metacache_stats *stats_r);

#endif
