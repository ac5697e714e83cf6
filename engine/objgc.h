/* objgc.h: the one place objects are deleted (CONTRACT.md section 5).
 *
 * A mail object that loses its last reference (the last name of a stub
 * unlinked or replaced, a stub rewritten) is *released*: its cached copy
 * goes at once, but the object stays in the store, *pending*, because the
 * last stored index bundle may still reference it.  The uploader takes the
 * pending keys of a tree when it snapshots that tree and, once a bundle of
 * the snapshot is stored, *condemns* them: from then on nothing
 * references them.  Superseded bundles are condemned the same way.
 * Condemned keys are appended to the garbage file (so a restart still
 * deletes them) and deleted in batches by objgc_flush() (one DeleteObjects
 * request per 1000 keys on S3), which the uploader calls at its interval,
 * at unmount and on request, not after every upload: deliveries stay at
 * about one request each.
 *
 * Condemned *mail* objects are kept a grace period first
 * (objgc_set_grace(), the delete_grace option), and before a flush
 * deletes them it lists their folder's bundles: a mail that a bundle of
 * another writer (split brain) references is kept (gccheck.h).  The
 * garbage file holds "<key>" lines, and "<key>\t<secs>" for mails (when
 * they were condemned).
 */
#ifndef OBOXFS_OBJGC_H
#define OBOXFS_OBJGC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct objstore;
struct mailcache;
struct objgc;

struct objgc_batch {
	char **keys;
	size_t count;
};

struct objgc_stats {
	uint64_t released;	/* mail objects released */
	uint64_t pending;	/* released, not condemned yet (now) */
	uint64_t condemned;	/* condemned, not deleted yet (now) */
	uint64_t deleted;	/* deleted from the store */
	uint64_t delete_failures;
	/* folders whose bundles were listed before deleting mails */
	uint64_t delete_checks;
	/* mail keys kept at a flush because another writer's bundle
	   references them (or its bundles could not be read) */
	uint64_t kept_referenced;
	/* condemned bases kept at a flush because another writer's diff
	   applies to them (gccheck_bases_built_on()) */
	uint64_t bundles_held;
};

/* garbage_path: the garbage file (NULL: keep condemned keys in memory
   only); its keys are loaded and will be deleted by the next flush.
   Returns NULL if out of memory. */
struct objgc *objgc_init(struct objstore *store, struct mailcache *mc,
			 const char *garbage_path);
void objgc_deinit(struct objgc **gc);
/* Condemned mail objects are deleted only once secs old (default 0): a
   machine serving the same user without knowing of this one (split
   brain) may build on a bundle listing them, and it notices this
   machine's bundles within its split_check_interval. */
void objgc_set_grace(struct objgc *gc, unsigned int secs);

/* The mail object key is no longer referenced by the tree: drop its
   cached copy, keep it pending.  Returns 0 or -1 (out of memory: then
   the object leaks, logged). */
int objgc_release(struct objgc *gc, const char *key);

/* Move the pending keys that start with prefix into batch_r (free with
   objgc_batch_free()). */
void objgc_take_pending(struct objgc *gc, const char *prefix,
			struct objgc_batch *batch_r);
/* The snapshot's upload failed: the keys are pending again. */
void objgc_return_pending(struct objgc *gc, struct objgc_batch *batch);
/* A bundle not referencing the keys is stored: condemn them. */
void objgc_condemn_batch(struct objgc *gc, struct objgc_batch *batch);
void objgc_condemn(struct objgc *gc, const char *key);
/* This machine stored the bundle key, or took over its chain at a load
   (upload_user_loaded()): not another writer's (gccheck.h) until it is
   condemned.  Noted once however often it is given. */
void objgc_own_bundle(struct objgc *gc, const char *key);
/* The mail object key was stored but its name operation failed: no name,
   so no bundle, ever referred to it.  Deleted at once (one request, on a
   failure path only), so that no load's rescan, on this machine or
   another, puts it back as a mail the MTA was told was not delivered.
   Returns 0, or -1 if the delete failed (then it is condemned). */
int objgc_discard(struct objgc *gc, const char *key);
void objgc_batch_free(struct objgc_batch *batch);

/* The mail key released or condemned here is referenced again (a
   split-brain merge: the other writer changed a mail this machine
   expunged; its intent is the newer): no longer garbage.  Returns 0, or
   -1 if it is not garbage waiting here (being deleted now, taken by an
   upload pass, or unknown): then it stays as it was. */
int objgc_revive(struct objgc *gc, const char *key);
/* True if some key starting with prefix was released or condemned and
   not deleted yet (a folder this machine deleted: its mails' and
   bundles' keys). */
bool objgc_has_garbage_below(struct objgc *gc, const char *prefix);
/* True if key was released or condemned and not deleted yet: a load of
   the user must not put it back as a mail (it is garbage, or about to
   be). */
bool objgc_is_garbage(struct objgc *gc, const char *key);

/* Delete every condemned key.  Returns 0, or -1 if some deletes failed
   (those stay condemned and are tried again next time). */
int objgc_flush(struct objgc *gc);

void objgc_get_stats(struct objgc *gc, struct objgc_stats *stats_r);

#endif
