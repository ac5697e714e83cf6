/* splitfolders.h: the folder side of a split-brain merge: the folders the
 * other writer created, renamed or deleted below one bundle root (a
 * maildir++ INBOX root holds its sibling folders as ".Name" directories,
 * an sdbox user root its "mailboxes/Name" ones; CONTRACT section 6, the
 * rules in docs/design.md "Split brain").
 *
 * A folder is a directory with a folder GUID (it has held mail: its own
 * bundle root, a bare entry here) or one holding a maildir "cur" or an
 * sdbox "dbox-Mails" directory.  Three-way, against the base both writers
 * built on (the common base; without it every folder of the other writer
 * missing here counts as created there):
 *  - created there (in neither the common base nor this root): created
 *    here, with the other writer's tree: a folder without a GUID from the
 *    other writer's root tree, one with a GUID from its own bundles (a
 *    LIST and one or two GETs, before the lock), stubs and indexes as
 *    they are there; if those cannot be read, the bare directory with
 *    its GUID (its mails come back at its own merge, putback.h);
 *  - a folder with a GUID that this root has under another name: renamed
 *    here to the other writer's name if the common base has it under
 *    this root's name (renamed there, not here); a rename on both sides
 *    keeps this machine's;
 *  - the other writer's folder with a GUID that this root has without
 *    one at the same name (it received its first mail there): the GUID
 *    is set here, so that its own merge brings the other writer's mails;
 *  - deleted here (the common base has it, or, without a common base,
 *    this machine's garbage holds keys of its GUID): stays deleted, unless the
 *    other writer changed a folder without a GUID since (its tree there
 *    differs from the common base's): then it is created again; a
 *    folder with a GUID deleted here comes back, with the other writer's
 *    mails, at the next load (its bundles and mails are in the store);
 *  - deleted there (the common base has it, the other writer's tree
 *    lacks it): a folder without a GUID is removed here if it is here as
 *    the common base has it (untouched here), else kept; a folder with a
 *    GUID is kept (its mails are never removed by a merge).
 */
#ifndef OBOXFS_SPLITFOLDERS_H
#define OBOXFS_SPLITFOLDERS_H

#include "keylist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct objstore;
struct objgc;
struct bundle_tree;
struct splitmerge_trees;
struct splitfolders_plan;

struct splitfolders_counts {
	unsigned int created, renamed, claimed, removed;
	/* bundles fetched for created folders */
	unsigned int gets;
	/* mails of a folder deleted here that come back with it (the other
	   writer changed it), taken out of this machine's garbage */
	unsigned int revived;
};

/* What the other writer did to the folders of one root (trees, from
   splitmerge_fetch()), against local, this root's last scan (NULL: no
   merge).  Folders created there with a GUID get their trees fetched
   here (user_prefix: the user's key prefix; gc: keys this machine
   condemned are not the other writer's, and no stub of a key it
   condemned is made).  known_guid(guid) says a folder GUID is one of the
   user's (any root): a folder, or a tree holding one, with such a GUID is
   not created again (one GUID, one directory), nor is one this machine
   deleted (its keys are its garbage: splitfolders_plan_gone() decides).
   Returns NULL if there is nothing to do. */
struct splitfolders_plan *
splitfolders_plan(struct objstore *store, struct objgc *gc,
		  const char *user_prefix, const struct bundle_tree *local,
		  const struct splitmerge_trees *trees,
		  bool (*known_guid)(const char *guid, void *context),
		  void *known_context, struct splitfolders_counts *counts);
/* What a folder's tree says of its mails: one hash of each stub's key
   and flags (the flags of a maildir name; sdbox flags are in its index),
   sorted.  Index files are left out: a SELECT rewrites them. */
struct splitfolders_digest {
	uint64_t *hashes;
	size_t count;
};
int splitfolders_mail_digest(const struct bundle_tree *tree,
			     struct splitfolders_digest *digest_r);
void splitfolders_digest_free(struct splitfolders_digest *digest);

/* A folder this machine deleted (guid, which was at path relative to the
   user dir; had: its mails when it went) whose keys are still its
   garbage: if the other writer stored bundles of it whose mails or flags
   differ from had (it delivered, flagged or expunged there since), a
   plan to make it again at path from them, with its parent's mode and
   owner, the mails condemned here revived (none if one cannot be: then
   NULL, tried again at the next check); else NULL. */
struct splitfolders_plan *
splitfolders_plan_gone(struct objstore *store, struct objgc *gc,
		       const char *user_prefix, const char *guid,
		       const char *path,
		       const struct splitfolders_digest *had,
		       struct splitfolders_counts *counts);
/* Under the user's snapshot lock: carry the plan out below root_fd (the
   root's directory), checking the disk before each change.  The
   directories whose entries changed (relative to the root, "" for the
   root itself) are added to changed_dirs, the folder names created,
   removed or renamed (both) to names (for the kernel's entries). */
void splitfolders_apply(const struct splitfolders_plan *plan, int root_fd,
			struct keylist *changed_dirs, struct keylist *names,
			struct splitfolders_counts *counts);
void splitfolders_plan_free(struct splitfolders_plan **plan);

#endif
