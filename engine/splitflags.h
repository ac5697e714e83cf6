/* splitflags.h: the flags part of a split-brain merge (splitbrain.c):
 * a maildir mail both writers have (one object key) gets the union of
 * the system flags of both writers' names for it (CONTRACT section 6,
 * docs/design.md "Split brain").  Keyword letters stay this machine's:
 * they index each machine's own dovecot-keywords. */
#ifndef OBOXFS_SPLITFLAGS_H
#define OBOXFS_SPLITFLAGS_H

#include "keylist.h"

#include <stdbool.h>

struct objstore;
struct bundle_tree;

/* The other writer's current tree of one root from its bundle keys
   (foreign: every key of that root this machine neither wrote nor
   condemned): its newest base with its current diff applied.  NULL if
   there is none or it cannot be read (logged); *gets_r counts the GETs. */
struct bundle_tree *splitflags_other_tree(struct objstore *store,
					  const struct keylist *foreign,
					  unsigned int *gets_r);

/* The local stubs keys[i] at paths[i] ("cur/<name>" or "new/<name>",
   relative to folder_fd) that other (the folder's tree on the other
   writer) has under a name with system flags they lack are renamed
   (in folder_fd, behind the kernel: the caller tells the front end) to
   cur/<base>:2,<both sides' flags>.  Sets dirs[0] (cur) and dirs[1] (new)
   for the directories changed; returns the count renamed. */
unsigned int splitflags_merge(int folder_fd, const struct keylist *keys,
			      const struct keylist *paths,
			      const struct bundle_tree *other, bool dirs[2]);

#endif
