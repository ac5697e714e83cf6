/* gccheck.h: before mail objects are deleted, is a bundle chain in the
 * store that this machine did not write still referencing them?
 *
 * CONTRACT.md section 5: an index never points at a deleted object.  A
 * machine that released a mail (an expunge) knows its own chain no longer
 * needs it, but during a split brain another machine may serve the same
 * user without having seen the expunge, and build on bundles that list the
 * mail.  So objgc_flush() asks, per folder, before deleting: the folder's
 * bundles are listed (one LIST per folder with mail deletes per flush),
 * and every bundle that this machine neither wrote nor condemned is
 * fetched and its stubs' keys read; a mail any of them references is kept.
 * Conservative: a key some bundle of another writer lists is kept even if
 * a later diff of that writer dropped it (a leak until that writer's next
 * base, never a loss).
 */
#ifndef OBOXFS_GCCHECK_H
#define OBOXFS_GCCHECK_H

#include <stdbool.h>
#include <stddef.h>

struct objstore;

/* a bundle key this machine wrote, or condemned: not another writer's */
typedef bool gccheck_ours_cb_t(const char *bundle_key, void *context);

struct gccheck_result {
	size_t foreign_bundles;	/* other writers' bundles read */
	size_t kept;		/* keys found referenced */
};

/* keys: mail keys of one folder (keys_mail_idx_prefix() equal for all).
   Sets referenced_r[i] for each key a bundle of another writer
   references, or the base one of its diffs applies to (which may be
   this machine's: the other writer loaded it and went on with diffs).  Returns 0, or -1 if the folder's bundles could not be
   listed or one of another writer's could not be read (error logged):
   then nothing may be deleted. */
int gccheck_referenced(struct objstore *store, const char *const *keys,
		       size_t count, gccheck_ours_cb_t *ours, void *context,
		       bool *referenced_r, struct gccheck_result *result_r);

/* keys: condemned base bundle keys of one root (one "<root>/idx/"
   directory).  A base another writer's diff applies to (that writer
   loaded this machine's chain and went on with diffs of it) must wait
   as a mail does: deleting it would leave that writer's chain, and what
   it alone has, unreadable.  Lists the directory once (no GETs) and sets
   held_r[i] for each key a diff this machine neither wrote nor condemned
   applies to.  Returns 0, or -1 if the listing failed (error logged):
   then every key is to be held. */
int gccheck_bases_built_on(struct objstore *store, const char *const *keys,
			   size_t count, gccheck_ours_cb_t *ours,
			   void *context, bool *held_r);

#endif
