/* users.h: the daemon's per-user state (one struct ouser per top-level
 * directory that has been looked up or created).
 *
 * Each user's tree is changed by FUSE operations and read by the index
 * uploader.  The uploader needs a consistent snapshot (CONTRACT.md
 * section 5: a bundle is the tree as of one moment), so every operation
 * that changes a user's tree holds the user's tree_lock shared
 * (users_change_begin/end) and the uploader holds it exclusive while it
 * scans the tree (a local walk, growing with the folder).  The lock prefers
 * writers, so a stream of operations cannot starve an upload.
 *
 * A change also bumps the user's generation and, the first time after an
 * upload, creates the user's dirty marker in the cache directory (see
 * cachestate.h), so an unclean shutdown knows whose tree to distrust.
 */
#ifndef OBOXFS_USERS_H
#define OBOXFS_USERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "keys.h"
#include "roots.h"
#include "touched.h"

struct cachestate;

struct ouser {
	struct ouser *next;		/* protected by users->lock */
	char *name;
	/* keys_user_prefix(): the user's part of the store; set at
	   creation, then read-only */
	char prefix[KEYS_PREFIX_MAX];

	/* shared: operations changing the tree; exclusive: a snapshot */
	pthread_rwlock_t tree_lock;
	/* bumped by every change (under tree_lock shared) */
	atomic_uint_fast64_t gen;
	/* the dirty marker file exists */
	atomic_bool marked;
	/* time of the last access (seconds, monotonic) */
	atomic_int_fast64_t last_access;
	/* open files and directories of this user */
	atomic_int open_count;
	/* allocated bytes of the tree when measured, and gen then
	   (metacache.h) */
	atomic_uint_fast64_t disk_bytes;
	atomic_uint_fast64_t measured_gen;
	atomic_bool measured;
	/* the tree's size as its last load or upload scan saw it
	   (users_set_tree_bytes()): when set, the metacache takes it
	   instead of walking the tree */
	atomic_uint_fast64_t tree_bytes;
	atomic_uint_fast64_t tree_bytes_gen;	/* gen of that scan */
	atomic_bool tree_bytes_known;

	/* one upload or load of this user at a time */
	pthread_mutex_t upload_lock;
	/* gen as of the last complete snapshot: clean if equal to gen
	   (written with upload_lock held, read without: the stats file must
	   not wait for an upload) */
	atomic_uint_fast64_t uploaded_gen;
	/* bundle roots with their upload state (protected by upload_lock) */
	struct user_roots roots;
	/* the files changed since their root's last scan (its own lock) */
	struct touched touched;
	/* monotonic ms when the store last had nothing of this user, or 0
	   (upload_lock): a lookup and the mkdir right after it cost one
	   LIST, not two */
	int64_t store_absent_ms;

	/* deliveries per folder since that folder's last upload
	   (protected by users->lock) */
	struct user_folder_count *folder_counts;
	unsigned int folder_count_len;
};

struct users;

struct users *users_init(struct cachestate *cs);
/* frees every user and its upload state (call with no operation running) */
void users_deinit(struct users **users);

/* The user named name (a valid user name), created on first use.  Never
   freed before users_deinit() (the metacache eviction of issue #5 will).
   NULL only when out of memory. */
struct ouser *users_get(struct users *users, const char *name);

/* Around an operation that changes user's tree (user may be NULL: then
   nothing is done). */
void users_change_begin(struct users *users, struct ouser *user);
void users_change_end(struct ouser *user);
/* The file ino of user's tree changed (content, metadata, xattrs, link
   count): the next snapshot of its root reads it again. */
void users_touched(struct ouser *user, uint64_t ino);
/* The engine changed user's tree itself (a split-brain merge, under the
   snapshot lock or upload_lock): it needs uploading. */
void users_changed_behind(struct ouser *user);
/* At startup: the last run could not upload user's changes (its dirty
   marker is still there): dirty again. */
void users_mark_left_dirty(struct ouser *user);
/* The tree's size from a load's or an upload's scan (bundle trees) at
   change generation gen, or forget it (known false: the tree was
   evicted). */
void users_set_tree_bytes(struct ouser *user, bool known, uint64_t bytes,
			  uint64_t gen);
/* Mark an access (lookup, read) for the idle timer. */
void users_touch(struct ouser *user);
/* A file or directory of user was opened / closed (user may be NULL). */
void users_opened(struct ouser *user);
void users_closed(struct ouser *user);

/* The uploader's snapshot lock. */
void users_snapshot_lock(struct ouser *user);
void users_snapshot_unlock(struct ouser *user);

/* True if user has changes not covered by a complete snapshot. */
bool users_is_dirty(struct ouser *user);

/* Count a delivery to the folder with the given guid; returns true (and
   resets the count) when it reaches limit. */
bool users_count_delivery(struct users *users, struct ouser *user,
			  const char *guid, unsigned int limit);

/* The users known now, as a malloc()ed array (users stay valid until
   users_deinit()).  Returns 0 or -1 (out of memory). */
int users_list(struct users *users, struct ouser ***users_r,
	       unsigned int *count_r);
unsigned int users_count(struct users *users);

#endif
