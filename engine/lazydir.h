/* lazydir.h: lazy maildir directories.  A cold load (userload.c) does not
 * create the stubs of a maildir cur/ or new/ it would fill with more than
 * LAZYDIR_THRESHOLD of them (creating 20,000 stubs took most of a cold
 * login): it writes them as a *table* in CACHE_DIR/lazy/ and marks the
 * directory with the LAZYDIR_XATTR xattr naming the table; the directory
 * keeps its restored mtime (Dovecot compares it with its index header).
 *
 * Rules while a directory has a table (it is *lazy*):
 *   - its content is what is on disk plus the table's entries whose names
 *     are not on disk; the only change allowed is creating a table entry's
 *     stub exactly as the load would have (materializing), so a scan may
 *     take the table's entries from the table (lazydir_foreach());
 *   - a lookup of a name not on disk creates that one stub if the table
 *     has it (lazydir_lookup());
 *   - a readdir lists the names on disk and the table's without
 *     materializing anything (lazydir_list()): Dovecot reads cur/ or new/
 *     at the first body fetch of an IMAP session (its dovecot-uidlist
 *     names lack the ":2,<flags>" part) and then opens the one mail;
 *   - a name operation adding or replacing a name of the table gets that
 *     stub first (the operation sees it exists); one adding a name the
 *     table lacks needs nothing (a delivery into a lazy new/: disk and
 *     table still give the directory's content) (lazydir_prepare());
 *   - before a name of the table is removed (unlink, rename away) the
 *     whole directory is materialized: every stub made, the directory
 *     fsynced, the xattr removed and the table unlinked, so that the name
 *     cannot come back (lazydir_expand()); so are the engine's own walks
 *     (split-brain merge, missing mails) and a lazy directory removed or
 *     replaced;
 *   - the directory's mtime stays as it was before materializing.
 *
 * A table is a base bundle (bundles/) of the directory's stub entries
 * named by their names, written as CACHE_DIR/lazy/<user>.<32 hex>.tmp,
 * fsynced and renamed, before the load's tree is renamed into place; the
 * xattr's value is that file name.  A table whose user's tree is gone is
 * garbage (lazydir_user_drop(), lazydir_startup()); a table that cannot be
 * read makes its user's tree untrusted: lazydir_startup() has it
 * discarded (reloaded from the store at the next access).
 *
 * Tables read are kept in memory (at most LAZYDIR_CACHE_TABLES), sorted
 * by name: a lookup is a binary search.
 *
 * Locking: struct lazydir's lock (lock order 2a, obox-private.h) is held
 * around every call; callers that change a tree hold its user's tree lock
 * (shared, or exclusive for a scan).
 */
#ifndef OBOXFS_LAZYDIR_H
#define OBOXFS_LAZYDIR_H

#include "bundle.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a cur/ or new/ with more stubs than this is loaded lazily */
#define LAZYDIR_THRESHOLD 256
#define LAZYDIR_XATTR "user.oboxfs.lazy"
#define LAZYDIR_CACHE_TABLES 8

struct lazydir;

/* CACHE_DIR/lazy (created if missing).  NULL with *error_r on failure. */
struct lazydir *lazydir_init(const char *cache_dir, const char **error_r);
void lazydir_deinit(struct lazydir **lz);

/* --- the load --- */

/* One directory of a tree being loaded whose stubs go to a table. */
struct lazydir_split {
	char *path;			/* the directory, in the tree */
	struct bundle_tree *tree;	/* its stubs, named by their names */
};

/* Copy the stubs (not hard-linked ones) of every cur/ or new/ of tree
   with more than threshold of them into *splits_r (count in *count_r;
   free them with lazydir_splits_free()).  The entries keep their
   metadata; without root privileges their owner becomes the one a
   create gives (the load cannot chown).  tree is not changed (a load
   keeps it whole for the uploader: no copy of 20,000 stubs); *rest_r is
   NULL if nothing was split, else a tree of tree's other entries, the
   entries themselves (their strings are tree's: free it with
   lazydir_split_rest_free() before tree goes). */
void lazydir_split(const struct bundle_tree *tree, size_t threshold,
		   struct lazydir_split **splits_r, size_t *count_r,
		   struct bundle_tree **rest_r);
void lazydir_split_rest_free(struct bundle_tree **rest);
void lazydir_splits_free(struct lazydir_split **splits, size_t count);
/* Does the split of directory path have name? */
bool lazydir_split_has(const struct lazydir_split *splits, size_t count,
		       const char *path, const char *name);
/* Write tree (taken over, freed) as the table of user's directory dir_fd
   and mark the directory.  Returns 0 or -1 with errno and *error_r
   (nothing left behind). */
int lazydir_install(struct lazydir *lz, const char *user, int dir_fd,
		    struct bundle_tree **tree, const char **error_r);
/* Unlink every table of user (its tree is gone or about to be loaded). */
void lazydir_user_drop(struct lazydir *lz, const char *user);

/* --- the tree in use --- */

/* Might any directory be lazy?  (A count of the tables on disk: no
   syscall; false means none is.) */
bool lazydir_any(struct lazydir *lz);
/* Is dir_fd (any fd of a directory, O_PATH too) lazy?  One getxattr. */
bool lazydir_is_lazy(int dir_fd);
/* Does dir_fd's table have name?  (false if the directory is not lazy or
   its table cannot be read: lazydir_lookup() tells that) */
bool lazydir_has(struct lazydir *lz, int dir_fd, const char *name);
/* name is not on disk in dir_fd: if the directory's table has it, create
   its stub.  Returns 1 if created (or there by now), 0 if not in a table,
   -1 with errno (EIO: the table is unreadable; logged). */
int lazydir_lookup(struct lazydir *lz, int dir_fd, const char *name);
/* Materialize the whole directory and remove its table.  Returns 1 if it
   was lazy, 0 if not, -1 with errno (logged). */
int lazydir_expand(struct lazydir *lz, int dir_fd);
/* A name operation is about to add, replace (removes false) or remove
   (removes true) name in dir_fd: a name the table does not have needs
   nothing (a delivery into a lazy new/); one it has is made first if
   it is added or replaced (the operation sees it exists), and the whole
   directory is materialized if it is removed (so that it cannot come
   back from the table).  Returns 0 or -1 with errno (logged). */
int lazydir_prepare(struct lazydir *lz, int dir_fd, const char *name,
		    bool removes);
/* The names of the lazy directory dir_fd as one listing, nothing
   materialized: cb with each name on disk (., .. too) the table lacks,
   then each table entry's (type DT_REG, a made-up inode number).
   Returns 1 if it was lazy, 0 if not (read it from disk), -1 with errno
   (logged). */
int lazydir_list(struct lazydir *lz, int dir_fd,
		 void (*cb)(const char *name, unsigned char type, uint64_t ino,
			    void *context),
		 void *context);
/* bundle_scan_prev.lazy: cb with each table entry of dir_fd (sorted by
   name); 1 if lazy, 0 if not, -1 with *error_r. */
int lazydir_foreach(int dir_fd, void (*cb)(const struct bundle_entry *e,
					   void *cb_context),
		    void *cb_context, void *context, const char **error_r);

/* At mount: remove temporary tables and those whose user has no tree in
   meta_fd; check every other one reads back: a user with a bad table is
   given to discard() (its tree must go: reloaded at the next access),
   then its tables are removed.  Returns the number of tables kept. */
size_t lazydir_startup(struct lazydir *lz, int meta_fd,
		       void (*discard)(const char *user, void *context),
		       void *context);

/* counters for the stats file */
struct lazydir_stats {
	uint64_t tables_written, stubs_made, dirs_expanded, tables_bad;
};
void lazydir_stats_get(struct lazydir *lz, struct lazydir_stats *stats_r);

#endif
