/* splitmerge.h: the index side of a split-brain merge of a maildir folder
 * (splitbrain.c puts the other writer's mails back; this merges what the
 * other writer did to the mails both have; CONTRACT section 6, the rules
 * in docs/design.md "Split brain"):
 *  - flags: a mail both writers have (one object key) gets the union of
 *    both writers' flags for it: system flags, and keywords by name (the
 *    other writer's letters index its own dovecot-keywords: a name this
 *    machine's file lacks is added to it, at its first free letter; a
 *    keyword that finds no letter, all 26 taken, is not merged).
 *  - the folder's line-based files (Dovecot's subscriptions, kept in the
 *    INBOX folder of a maildir user): the union of both sides' lines.
 *  - expunges, three-way: when the other writer built on a base this
 *    machine knows (the common base: the base of its diffs, or this
 *    machine's base when the other writer's base names it as parent), a
 *    mail that base lists, that the other writer expunged (its current
 *    tree lacks it) and that is still here under the base's name
 *    (untouched here) is expunged here too; a mail changed here since
 *    (renamed: flags) stays.  Without a known common base nothing is
 *    expunged: no mail is lost. */
#ifndef OBOXFS_SPLITMERGE_H
#define OBOXFS_SPLITMERGE_H

#include "bundle.h"
#include "keylist.h"

#include <stdbool.h>

struct objstore;
struct objgc;
struct bundle_tree;

struct splitmerge_trees {
	/* the other writer's current tree of the folder */
	struct bundle_tree *other;
	/* the base both writers built on, or NULL if unknown */
	struct bundle_tree *common;
	/* the name of the other writer's bundle other is (its newest) */
	struct bundle_name other_name;
	/* that bundle's mail watermark (bundle_info; microseconds on the
	   ids' clock, 0: none): a mail object of the folder made before it
	   that other does not reference was expunged by the other writer
	   (released: its object waits to be deleted) */
	uint64_t other_mark_us;
	unsigned int gets;	/* bundles fetched for them */
	/* the flags of other's and common's sdbox indexes (sdboxflags.h),
	   parsed at their first use by splitmerge_changed_there(); the
	   caller's thread only, freed with the trees */
	struct sdboxflags *sdbox_other, *sdbox_common;
};

/* What this machine has of the root: the name and tree of its base, or
   NULL */
struct splitmerge_local {
	const struct bundle_name *base_name;
	const struct bundle_tree *base;
};

/* The trees from the other writer's bundle keys of one folder (foreign:
   every key of it this machine neither wrote nor condemned): its newest
   base with its current diff applied.  The common base: if it wrote only
   diffs, their base (one both loaded); if its base's parent (a rebase or
   a merge, bundle_info.has_parent) is a bundle of local's base (NULL:
   unknown), local's base (it may be older than the last state both had:
   the rules below hold with an older common base too).
   trees_r->other is NULL if there is nothing readable (logged). */
void splitmerge_fetch(struct objstore *store, const struct keylist *foreign,
		      const struct splitmerge_local *local,
		      struct splitmerge_trees *trees_r);
void splitmerge_trees_free(struct splitmerge_trees *trees);

/* What a merge changed in the folder behind the kernel (the caller tells
   the front end): the directories cur/ and new/, the folder's
   dovecot-keywords. */
enum splitmerge_changed {
	SPLITMERGE_CUR,
	SPLITMERGE_NEW,
	SPLITMERGE_KEYWORDS,
	SPLITMERGE_SUBSCRIPTIONS,
	SPLITMERGE_CHANGED_COUNT
};
/* the file (relative to the folder) of each of them */
extern const char *const splitmerge_changed_names[SPLITMERGE_CHANGED_COUNT];

/* The local stubs keys[i] at paths[i] ("cur/<name>" or "new/<name>",
   relative to folder_fd; changed[] set for what was changed, and every
   name removed or added, as such a path, added to names_r: the kernel's
   entries of them are dropped).  Expunges
   first: stubs removed, their objects released to gc; returns the count.
   Then flags: the keywords the other writer's names carry that this
   folder's dovecot-keywords lacks are added to it (before any name uses
   them), and stubs renamed to cur/<base>:2,<both sides' flags>; returns
   the count of stubs renamed. */
/* The other writer changed the mail key since the common base: its
   tree has it with flags other than the common base's (false without a
   common base, or if it lacks the mail): a maildir mail's flags are in
   its names, an sdbox mail's (flags and keywords) in each tree's copy of
   the folder's index files (sdboxflags.h).  A mail expunged here and
   changed there stays (the rule above, from the other side). */
bool splitmerge_changed_there(struct splitmerge_trees *trees,
			      const char *key);
unsigned int splitmerge_expunges(int folder_fd, struct objgc *gc,
				 const struct keylist *keys,
				 const struct keylist *paths,
				 const struct splitmerge_trees *trees,
				 bool changed[SPLITMERGE_CHANGED_COUNT],
				 struct keylist *names_r);
unsigned int splitmerge_flags(int folder_fd, const struct keylist *keys,
			      const struct keylist *paths,
			      const struct bundle_tree *other,
			      bool changed[SPLITMERGE_CHANGED_COUNT],
			      struct keylist *names_r);
/* The folder's subscriptions: this machine's lines in their order, then
   the other writer's lines it lacks (a file only the other writer has is
   taken whole).  Returns the lines added. */
unsigned int splitmerge_lines(int folder_fd, const struct bundle_tree *other,
			      bool changed[SPLITMERGE_CHANGED_COUNT]);

#endif
