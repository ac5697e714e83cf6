/* cachestate.h: what the cache directory remembers about the last run, so
 * that an unclean shutdown is noticed (CONTRACT.md section 6).
 *
 * The cache is never fsynced.  CACHE_DIR/state/ holds:
 *   mounted        "mounted <boot id>" while the daemon runs, "clean <boot
 *                  id>" after a clean unmount (written after syncfs());
 *   dirty/<user>   the user has changes no stored bundle holds yet;
 *   garbage        store keys that may be deleted (see objgc.h).
 * At startup: "mounted" with this boot's id means the daemon was killed:
 * the page cache survived, so only the users with a dirty marker are
 * distrusted; another boot's id means the machine went down: every
 * user's tree is distrusted.  A distrusted tree is moved away and deleted;
 * the next access loads it again from the store.
 */
#ifndef OBOXFS_CACHESTATE_H
#define OBOXFS_CACHESTATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct cachestate;

enum cachestate_last_run {
	CACHESTATE_FIRST = 0,	/* no marker: a new cache directory */
	CACHESTATE_CLEAN,
	CACHESTATE_KILLED,	/* same boot, no clean unmount */
	CACHESTATE_CRASHED,	/* another boot, no clean unmount */
};

/* Open (creating) CACHE_DIR/state, read how the last run ended, discard
   distrusted user trees below meta_fd (CACHE_DIR/meta) and write the
   "mounted" marker.  Returns 0 or -1 with *error_r. */
int cachestate_open(const char *cache_dir, int meta_fd,
		    struct cachestate **cs_r, const char **error_r);
/* clean: syncfs() the cache and write the "clean" marker. */
void cachestate_close(struct cachestate **cs, bool clean);

enum cachestate_last_run cachestate_last_run(struct cachestate *cs);
/* Move meta/<user> away and delete it: the tree is distrusted, the
   next access loads it from the store (logged). */
void cachestate_discard(struct cachestate *cs, const char *user);
/* number of user trees discarded at open */
unsigned int cachestate_discarded(struct cachestate *cs);

/* Create / remove user's dirty marker.  Return 0 or -1 (logged). */
int cachestate_mark_dirty(struct cachestate *cs, const char *user);
int cachestate_clear_dirty(struct cachestate *cs, const char *user);

/* Call fn for each user that has a dirty marker now (after a clean run:
   changes the last run could not upload). */
void cachestate_foreach_dirty(struct cachestate *cs,
			      void (*fn)(const char *user, void *context),
			      void *context);

/* CACHE_DIR/state/ids-clock: the ids' clock (ids.h) as the last run left
   it, so that this run's mail oids are past the watermarks of the bundles
   it stored even if the wall clock went back meanwhile.  Saved after each
   upload pass (not fsynced: after a crash every tree is loaded again,
   which raises the clock from the bundles).  read: 0 if there is none or
   it is unreadable. */
uint64_t cachestate_clock_read(struct cachestate *cs);
void cachestate_clock_save(struct cachestate *cs, uint64_t us);

/* The path of CACHE_DIR/state/<name> into buf; returns buf. */
const char *cachestate_path(struct cachestate *cs, const char *name,
			    char *buf, size_t size);

#endif
