/* userload.h: building a user's metacache tree from the store (a takeover:
 * another machine's or an empty cache) and putting back mails missing from
 * it (the rescan of CONTRACT.md section 6).
 *
 * The store holds, below the user prefix P = "<h1>/<h2>/<user>":
 *   P/idx/bundle.*                    bundles of the user root (the user dir
 *                                     minus its folders)
 *   P/mailboxes/<G>/idx/bundle.*      bundles of folder G (the tree below a
 *                                     directory with user.oboxfs.guid = G)
 *   P/mailboxes/<G>/<oid>             mails, metadata path/name(/mtime)
 * One LIST of "P/" finds everything; the user root's bundles are loaded
 * first, then every folder found in the trees written so far (a DIR entry
 * with a guid), recursively.  A folder with bundles that no tree mentions is
 * placed where its mails' metadata says (one HEAD).  Then every mail object
 * that no stub references is put back as a stub (one HEAD each).
 *
 * Bundles and metadata are untrusted: a bad bundle (checksum, truncated,
 * header not matching its name, undecodable, a diff that does not apply,
 * a tree the filesystem refuses, e.g. a path too long) is logged with its
 * key and treated as absent (an older diff, else the base alone, else no
 * tree: the folder's mails still come back through the rescan); a stub
 * pointing outside this user's mail objects is dropped; a mail with bad
 * metadata is logged and skipped.  A folder GUID found twice: the second
 * directory is left empty and loses its GUID xattr.  Only store failures
 * (transient, throttled, auth, permanent) and local I/O errors (ENOSPC,
 * EIO, ...) make the load fail.
 *
 * Owners and modes: the trees restore their own (owners when running as
 * root).  Directories created for put-back mails get the owner and
 * permission bits of their parent, stubs the owner of their directory and
 * its permission bits minus the x bits (0700 -> 0600).  At the end (when
 * running as root) dir_fd is chown()ed to the most common owner of its
 * top-level entries (left alone if it has none) and given mode 0700.
 */
#ifndef OBOXFS_USERLOAD_H
#define OBOXFS_USERLOAD_H

#include "bundle.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct objstore;

/* the largest bundle fetched */
#define USERLOAD_BUNDLE_MAX BUNDLE_FETCH_MAX

struct userload_stats {
	/* roots (user root, folders) whose tree came from a bundle */
	unsigned int roots_loaded;
	/* bundles fetched (GET) / refused (corrupt, gone since the listing,
	   misnamed, not applying, unwritable) */
	unsigned int bundles_fetched, bundles_rejected;
	/* of bundles_fetched: GETs run ahead, in parallel (objstore-fetch.h)
	   and the most of them in flight at once */
	unsigned int bundles_fetched_ahead, bundles_fetched_parallel_max;
	/* mails put back as stubs / skipped (bad metadata, gone, name taken) */
	unsigned int mails_put_back, mails_skipped;
	/* distinct folder GUIDs seen in the listing or in the trees */
	unsigned int folders_found;
	/* mail keys listed; folders whose mails older than their tree's
	   watermark were not listed (userload-list.c) */
	unsigned int mails_listed, folders_list_skipped;
	/* unreferenced mails listed that predate their tree's watermark
	   (released there, e.g. expunged, waiting delete_grace): not put
	   back */
	unsigned int mails_before_mark;
	/* what the trees written and the stubs put back take on disk, as
	   bundle_tree_disk_bytes() estimates it, the stubs' own space not
	   counted; and how many stubs that is */
	uint64_t disk_bytes, stubs;
	/* microseconds spent writing trees (bundle_tree_write()) and the
	   lazy directories' tables */
	uint64_t write_usecs;
	/* directories loaded lazily (lazydir.h) and their stubs (counted in
	   stubs too, not created) */
	uint64_t lazy_dirs, lazy_stubs;
};

/* A bundle root found while loading: the user root (path "", guid "") or
   a folder.  bundle_keys are every bundle key of that root in the listing
   (valid names only, newest base included), for the uploader to delete
   once it has stored a new base of its own. */
struct userload_root {
	/* relative to the user dir: "" for the user root; NULL for a folder
	   that has bundles but could not be placed in the tree */
	char *path;
	char guid[33];
	/* a tree was loaded from these bundles */
	bool tree_loaded;
	char **bundle_keys;
	size_t bundle_key_count;
	/* one writer's chain was loaded whole: its base as stored
	   (is_base, no diff applied), its stored bytes and key
	   (bundle_keys[chain_base_idx]), the tree of the newest diff that
	   applied (NULL if none) and the newest diff seq seen (0 if none),
	   for the uploader: the next upload is a diff of that base.  NULL
	   chain_base otherwise (two writers, a foreign stub dropped). */
	struct bundle_tree *chain_base, *chain_last;
	size_t chain_base_size, chain_base_idx;
	uint32_t chain_seq;
};

struct userload_roots {
	/* roots[0] is the user root */
	struct userload_root *roots;
	size_t count;
};

/* Build the tree of user from the store into the empty directory dir_fd (a
   temporary directory on the metacache's filesystem, O_PATH is enough; the
   caller renames it into place).  Returns 1 if the store has anything of
   this user, 0 if nothing (dir left empty), -1 on failure (logged too):
   errno EIO for a store error, EINVAL for an invalid user name, else the
   local error; the directory is then in an unknown state.  *error_r is a
   message valid until the next userload call in this thread.  stats_r may
   be NULL; roots_r (may be NULL) is set unless -1 is returned, free it
   with userload_roots_free(). */
int userload_load(struct objstore *store, const char *user, int dir_fd,
		  struct userload_stats *stats_r,
		  struct userload_roots **roots_r, const char **error_r);
void userload_roots_free(struct userload_roots **roots);

/* Mails whose key this returns true for are not put back (garbage the
   caller has not deleted yet). */
typedef bool userload_skip_cb(const char *key, void *context);
int userload_load_filtered(struct objstore *store, const char *user,
			   int dir_fd, userload_skip_cb *skip,
			   void *skip_context, struct userload_stats *stats_r,
			   struct userload_roots **roots_r,
			   const char **error_r);
/* The same, with the big maildir directories' stubs written as lazy
   tables (lazydir.h) instead of created, if lazy is not NULL. */
struct lazydir;
int userload_load_lazy(struct objstore *store, const char *user, int dir_fd,
		       userload_skip_cb *skip, void *skip_context,
		       struct lazydir *lazy, struct userload_stats *stats_r,
		       struct userload_roots **roots_r, const char **error_r);


#endif
