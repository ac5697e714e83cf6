/* touched.h: which files of a user's tree changed, and when: inode number
 * -> the user's change generation of its latest change.  The upload's
 * incremental scan (upload.c) reads a file again only if it changed since
 * its root's last scan; every other file is taken from that scan as it
 * was.  Own lock (a leaf of the lock order, obox-private.h).
 */
#ifndef OBOXFS_TOUCHED_H
#define OBOXFS_TOUCHED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct touched {
	pthread_mutex_t lock;
	/* open addressing; ino 0 marks an empty slot (protected by lock) */
	uint64_t *inos, *gens;
	size_t count, size;
	/* out of memory: changes were not recorded, so every file counts
	   as changed until a prune past overflow_gen, the latest of them
	   (protected by lock) */
	bool overflow;
	uint64_t overflow_gen;
};

void touched_init(struct touched *t);
void touched_deinit(struct touched *t);
/* File ino changed at generation gen. */
void touched_note(struct touched *t, uint64_t ino, uint64_t gen);
/* Did ino change after generation gen? */
bool touched_since(struct touched *t, uint64_t ino, uint64_t gen);
/* Forget the changes at or before generation gen (every scan that may
   ask about them has happened). */
void touched_prune(struct touched *t, uint64_t gen);
size_t touched_count(struct touched *t);

#endif
