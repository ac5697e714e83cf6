/* sdboxmerge.h: the flags side of a split-brain merge of an sdbox folder
 * (splitbrain.c puts the other writer's mails back; the rules are
 * docs/design.md's "Split brain"): a mail both writers have (one object
 * key: a u.N stub here and one in the other writer's tree, maybe under
 * another UID) gets the union of both writers' flags and keywords
 * (keyword names compared without case), as a maildir mail does
 * (splitmerge.h).
 *
 * sdbox keeps flags in Dovecot's index only: the other writer's are read
 * from its tree's copies of the folder's index files, this machine's
 * from the folder's own (sdboxflags.h), and what this side lacks becomes
 * transaction log records (FLAG_UPDATE, KEYWORD_UPDATE adding, written as
 * a sync writes changes that happened: EXTERNAL) that the caller appends
 * to the folder's dovecot.index.log as a Dovecot process does (under its
 * lock: splitbrain.c).  A mail this merge puts back is not in this
 * side's index until Dovecot rebuilds it (putback.h): its flags come
 * with a later check.
 *
 * No shared state.
 */
#ifndef OBOXFS_SDBOXMERGE_H
#define OBOXFS_SDBOXMERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bundle_tree;
struct sdboxflags;

struct sdboxmerge_result {
	unsigned char *records;	/* malloc()ed; NULL: nothing to add */
	size_t size;
	unsigned int mails;	/* mails given flags or keywords */
	/* an index was damaged or hostile (sdboxflags.h): nothing merged */
	bool incomplete;
};

/* a mail both writers have: its UID here and in the other writer's
   index */
struct sdboxmerge_pair {
	uint32_t local_uid, other_uid;
};

/* folder_fd: the sdbox folder (its dbox-Mails below it); other: the
   other writer's tree of the folder.  A mail is matched by its key (one
   u.N stub of it on each side: copies are left alone).  Returns 0 with r,
   or -1 with errno (this machine's stubs or index files could not be
   read: to be tried again). */
int sdboxmerge_flags(int folder_fd, const struct bundle_tree *other,
		     struct sdboxmerge_result *r);

/* The records for the pairs (any order) of local and other. */
void sdboxmerge_records(const struct sdboxflags *local,
			const struct sdboxflags *other,
			const struct sdboxmerge_pair *pairs, size_t count,
			struct sdboxmerge_result *r);

void sdboxmerge_result_free(struct sdboxmerge_result *r);

#endif
