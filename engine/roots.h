/* roots.h: a user's bundle roots and their upload state: for each root
 * (the user dir, every folder) the stored base and last diff trees and the
 * live bundle keys.  Kept in memory while the user is cached, and the keys
 * in CACHE_DIR/state/bundles/<user> (roots_save(), roots_read()) so that
 * after a restart the first upload of a root writes a new base and
 * condemns the old keys.  All of it is protected by the user's
 * upload_lock (obox-private.h, lock order 1).
 */
#ifndef OBOXFS_ROOTS_H
#define OBOXFS_ROOTS_H

#include "bundle.h"
#include "ids.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct upload_root {
	struct upload_root *next;
	char guid[IDS_HEX_LEN + 1];	/* "" for the user root */
	struct bundle_tree *base;	/* the stored base (is_base) */
	size_t base_size;
	struct bundle_name base_name;
	/* base_name names a base this machine stored or took over at a
	   load (kept when base is dropped for a merge): the parent of its
	   next base */
	bool base_named;
	struct bundle_tree *last;	/* last stored diff's tree, or NULL */
	/* last ?: base is also the root's last scan (a scan equal to it
	   replaces it), made at the user's change generation scan_gen: the
	   next scan reads again only the files changed since (touched.h) */
	uint64_t scan_gen;
	/* bundle_tree_disk_bytes() of last ?: base (the metacache's
	   accounting), 0 while there is no tree; stale: to compute again */
	uint64_t disk_bytes;
	bool disk_bytes_stale;
	uint32_t seq;
	char **keys;			/* live bundle keys */
	size_t key_count;
	bool seen;
	/* the other writer's newest bundle a split-brain merge took in:
	   the parent of the root's next base (bundle_info.has_parent), so
	   that the other writer finds the base both built on */
	struct bundle_name merge_parent;
	bool has_merge_parent;
	/* monotonic seconds of the last split-brain check */
	int64_t split_checked;
	/* where the root was at its last upload (relative to the user dir),
	   or NULL */
	char *path;
};

/* A folder root a full pass no longer saw (deleted here), kept while its
   keys are this machine's garbage: another writer that changed that
   folder meanwhile has it made again (splitbrain_check_gone()). */
struct gone_root {
	struct gone_root *next;
	char guid[IDS_HEX_LEN + 1];
	char *path;		/* where it was, relative to the user dir */
	/* its mails when it went (splitfolders_mail_digest()'s hashes) */
	uint64_t *mail_hashes;
	size_t mail_count;
	int64_t checked;	/* monotonic seconds of the last check */
};

struct user_roots {
	struct upload_root *list;
	/* list has been filled from the state file or a load */
	bool read;
	/* deleted folder roots (in memory only: after a restart such a
	   folder comes back at the next load, if its mails are kept) */
	struct gone_root *gone;
};

/* The root with guid ("" user root), created if missing (NULL: out of
   memory). */
struct upload_root *roots_get(struct user_roots *roots, const char *guid);
/* The user root's entry if it exists, else NULL. */
struct upload_root *roots_find(struct user_roots *roots, const char *guid);
int roots_add_key(struct upload_root *root, const char *key);
void roots_free_keys(struct upload_root *root);
/* Note root's folder (its guid and path, and mail_hashes, taken) as
   gone; a root made again with that guid (roots_get()) takes it off the
   list. */
void roots_add_gone(struct user_roots *roots, const struct upload_root *root,
		    uint64_t *mail_hashes, size_t mail_count);
/* Unlink and free gone. */
void roots_remove_gone(struct user_roots *roots, struct gone_root *gone);
/* Unlink and free root. */
void roots_remove(struct user_roots *roots, struct upload_root *root);
/* Free every root; read is false again (eviction, deinit). */
void roots_forget(struct user_roots *roots);

/* After a load: the bundle keys found for the root with guid, to be
   condemned once a new base of that root is stored.  Returns 0 or -1. */
int roots_add_loaded(struct user_roots *roots, const char *guid,
		     char *const *keys, size_t key_count);

/* The state file path: the live keys of every root ("<guid or -> <key>"
   lines); only keys below prefix + '/' are read back. */
void roots_save(struct user_roots *roots, const char *path);
void roots_read(struct user_roots *roots, const char *path,
		const char *prefix);

#endif
