/* obox-private.h: the engine's shared state (struct obox) and its lock
 * order.  Only engine/ files include it.
 *
 * LOCK ORDER.  This is the one place it is written down; every path
 * follows it.  A lock may be taken while holding only locks listed above
 * it (same-level locks of two objects: see the notes).
 *
 *   1. ouser.upload_lock     one upload, load or eviction of a user at a
 *                            time (upload.c, userget.c, metacache.c)
 *   2. ouser.tree_lock       rwlock: shared around every operation that
 *                            changes the user's tree (obox_change_begin()),
 *                            exclusive for an upload's snapshot and a
 *                            split-brain merge.  Two users' tree locks
 *                            (a rename between users) are taken in
 *                            address order.
 *  2a. lazydir.lock          lazy directories' tables (lazydir-private.h):
 *                            taken holding no lock, a tree lock (shared
 *                            or exclusive) or, loading, an upload lock;
 *                            takes no other engine lock
 *   3. inode locks           mailstore_lock_inode() (inolock.c): one per
 *                            inode number; one at a time
 *  3a. size locks            obox_size_grow_begin() and
 *                            obox_size_measure_begin() (sizelock.c): one
 *                            per inode number, one at a time; a write
 *                            begins its growth inside its inode lock (the
 *                            growth may end after it, in another thread),
 *                            an attribute reply measures holding no other
 *                            engine lock
 *   4. obox.ns_lock          around removing a name (mailnames.c)
 *   5. leaf locks            each held only around its own fields, never
 *                            while taking another lock of this list:
 *                            users.lock, objgc.flush_lock (then
 *                            objgc.lock), objgc.lock, mailstore.guid_lock,
 *                            mailstore.stats_lock, upload_ctx.stats_lock,
 *                            uploader.lock, metacache.lock, the cachedir
 *                            locks (cachedir/), the inode table's own
 *                            mutex (inolock.c), a load's fetcher lock
 *                            (objstore/objstore-fetch.c: its threads
 *                            take no other lock)
 *
 * So nothing that holds a tree lock may take an upload_lock: loading a
 * user (obox_user_load()) happens before obox_change_begin(), never
 * inside it.  The front end's own locks (fs/: the inode table lock, a
 * handle's lock) are taken around engine calls that take only leaf locks
 * (users.lock, the cachedir locks), or after an inode lock (a write
 * handle's lock inside obox_write_begin()/obox_write_end()).  The
 * name_changed callback (a split-brain merge, holding a tree lock
 * exclusive) takes the front end's inode table lock and its
 * invalidation queue's lock (fs/kinval.c), each a leaf, and never waits
 * for the kernel.
 */
#ifndef OBOXFS_OBOX_PRIVATE_H
#define OBOXFS_OBOX_PRIVATE_H

#include "obox.h"
#include "upload.h"

#include <pthread.h>
#include <stdatomic.h>

struct sizelock_table;

struct obox {
	struct obox_settings set;	/* strings not kept: see below */
	char *cache_dir;
	int lock_fd;		/* CACHE_DIR/oboxfs.lock, flock()ed */
	int meta_fd;		/* O_PATH of CACHE_DIR/meta */
	char *meta_path;	/* its realpath() */
	int staging_fd;		/* CACHE_DIR/staging: new stub files */
	int load_fd;		/* CACHE_DIR/load: users being loaded */

	struct objstore *store;
	struct mailcache *mailcache;
	struct objgc *gc;
	struct mailstore *ms;
	struct sizelock_table *size_locks;	/* sizelock.c */
	struct users *users;
	struct cachestate *cs;
	struct upload_ctx upctx;
	bool upctx_ok;
	struct uploader *uploader;	/* set by obox_start() */
	struct metacache *metacache;
	struct mailmissing *missing;
	struct lazydir *lazy;		/* lazydir.c: set at init */
	/* for tests of what a killed daemon leaves behind: obox_deinit()
	   skips the final upload pass and leaves the cache state unclean
	   (the next obox_init() sees CACHESTATE_KILLED) */
	bool deinit_unclean;

	atomic_uint_fast64_t users_loaded, mails_put_back;
	/* user loads: mail keys listed, folders whose old mails were not */
	atomic_uint_fast64_t load_mails_listed, load_folders_list_skipped;
	atomic_uint_fast64_t load_bundles_fetched_ahead;
	/* time spent loading users / writing their trees (of that) */
	atomic_uint_fast64_t load_usecs, load_write_usecs;
	/* unreferenced mails older than their tree's watermark: not put
	   back (released, e.g. expunged and waiting delete_grace) */
	atomic_uint_fast64_t load_mails_before_mark;
	/* lock order 4: held around removing names (unlink, rename onto)
	   so that exactly one caller sees a stub's last link go and
	   releases its object */
	pthread_mutex_t ns_lock;
};

/* sizelock.c */
struct sizelock_table *sizelock_init(void);
void sizelock_deinit(struct sizelock_table **table);

/* userget.c: the delivery callback of mailstore (counts deliveries per
   folder, asks the uploader for the folder's upload) */
struct mail_place;
void obox_delivery_noted(const struct mail_place *place, void *context);

/* mailnames.c: what a crash left in the staging directory */
void obox_staging_cleanup(struct obox *obox);

#endif
