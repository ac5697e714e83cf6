/* upload.h: uploading a user's index tree as bundles (CONTRACT.md
 * sections 4 and 5, docs/bundle-format.md).
 *
 * A user's tree below CACHE_DIR/meta/<user> is split into bundle roots:
 * the user directory itself and every directory with a folder GUID
 * (user.oboxfs.guid).  A root's bundle holds its tree; a nested folder
 * directory is in it as a directory entry with its GUID but nothing below
 * (it is a root of its own).  Left out: lock files ("*.lock"), the
 * contents of "tmp" directories and sdbox ".temp.*" files, which are all
 * transient.
 *
 * upload_user() snapshots the roots under the user's exclusive tree lock,
 * then, per root whose tree differs from what was last stored: a diff
 * against the root's base (seq + 1), or a new base when there is none yet,
 * when the diff grew past half of the base or past sqrt(2 x base x the
 * diff's growth per upload) (what minimizes the bytes sent), or after 64
 * diffs.  The previous diff,
 * or for a new base the old base and its diffs, is condemned (objgc.h):
 * deleted at the next flush.  Mail objects released before the snapshot
 * are condemned once every root of the snapshot is stored.
 *
 * The live bundle keys of each root are kept in CACHE_DIR/state/bundles/
 * <user>, so that after a restart (no base in memory) the first upload of
 * a root writes a new base and condemns the old keys.
 */
#ifndef OBOXFS_UPLOAD_H
#define OBOXFS_UPLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct objstore;
struct objgc;
struct cachestate;
struct ouser;
struct userload_roots;

struct upload_stats {
	uint64_t passes;	/* upload_user() calls that stored all */
	uint64_t failures;	/* upload_user() calls that failed */
	uint64_t bases, diffs;	/* bundles stored */
	uint64_t bytes;		/* bundle bytes stored */
	uint64_t unchanged;	/* roots found unchanged */
	/* regular files of the snapshots read from disk / taken from the
	   root's last scan (unchanged since) */
	uint64_t scan_files_read, scan_files_reused;
	/* time snapshots held users' tree locks (blocking every change of
	   the user's tree meanwhile), in all and the longest */
	uint64_t snapshot_usecs, snapshot_max_usecs;
	uint64_t last_base_bytes, last_diff_bytes;
	uint64_t split_checks;	/* split-brain listings */
	/* keys those listings gave: a folder's bundles, its mails only
	   when another writer is found */
	uint64_t split_check_keys;
	uint64_t split_brains;	/* roots another machine wrote to */
	uint64_t split_mails_merged;	/* mails put back from it */
	/* local stubs whose objects the other writer deleted: removed */
	uint64_t split_mails_dropped;
	/* maildir mails given the other writer's flags too, expunged as the
	   other writer did (splitmerge.h); its bundles read for that */
	uint64_t split_flags_merged, split_mails_expunged, split_bundles_read;
	uint64_t split_folders_merged;
};

/* a directory of user's tree (path relative to the user dir) got entries
   behind the kernel's back: it must drop what it cached of it */
typedef void upload_dir_changed_cb(struct ouser *user, const char *path,
				   void *context);

/* the name name in the directory path of user's tree (relative to the
   user dir) was removed, added or now names another file, behind the
   kernel's back: it must drop its entry */
typedef void upload_name_changed_cb(struct ouser *user, const char *path,
				    const char *name, void *context);

/* append data to the file path of user's tree (relative to the user
   dir) as the front end's processes do (obox_file_append_cb); -1 with
   errno if it cannot */
typedef int upload_file_append_cb(struct ouser *user, const char *path,
				  const void *data, size_t len,
				  void *context);

struct upload_ctx {
	struct objstore *store;
	struct objgc *gc;
	struct cachestate *cs;
	int meta_fd;		/* CACHE_DIR/meta */
	/* seconds between split-brain checks of a root (0: never) */
	unsigned int split_check_interval;
	upload_dir_changed_cb *dir_changed;
	upload_name_changed_cb *name_changed;
	upload_file_append_cb *file_append;	/* or NULL */
	/* the context of all three */
	void *dir_changed_context;
	/* what a stub takes on the cache's disk (stub_disk_bytes()), for
	   the trees' sizes (set after init, then read-only) */
	uint64_t stub_disk_bytes;
	/* the lazy directories' tables (lazydir.h; set after init, then
	   read-only; NULL: none) */
	struct lazydir *lazy;

	pthread_mutex_t stats_lock;
	struct upload_stats stats;	/* protected by stats_lock */
};

int upload_ctx_init(struct upload_ctx *ctx, struct objstore *store,
		    struct objgc *gc, struct cachestate *cs, int meta_fd);
void upload_ctx_deinit(struct upload_ctx *ctx);

/* Upload user's changed roots; folder_path (relative to the user dir,
   NULL: every root) limits it to that folder's root.  Returns 0 if all
   that changed is stored (user is then clean if nothing changed since the
   snapshot and folder_path was NULL), -1 on failure (logged; nothing is
   lost, the next upload tries again). */
int upload_user(struct upload_ctx *ctx, struct ouser *user,
		const char *folder_path);

/* After user was loaded from the store (userload.h): the bundle keys
   found for each root, to be condemned once a new base of that root is
   stored; the user's roots count as read.  A root whose one writer's
   chain was loaded whole takes over its base (and its newest diff's tree,
   taken from loaded): its next upload is a diff of that base, and the
   chain's bundles are this machine's for the split-brain check (objgc).
   Call with user->upload_lock held.  Returns 0 or -1 (out of memory: some
   old bundles may stay). */
int upload_user_loaded(struct upload_ctx *ctx, struct ouser *user,
		       struct userload_roots *loaded);
/* True if the user root has a stored bundle (call with upload_lock). */
bool upload_user_root_stored(struct upload_ctx *ctx, struct ouser *user);

/* A user without changes that is being used: the split-brain check of its
   stored roots (splitbrain.c), when due. */
void upload_split_check_user(struct upload_ctx *ctx, struct ouser *user);

void upload_get_stats(struct upload_ctx *ctx, struct upload_stats *stats_r);

#endif
