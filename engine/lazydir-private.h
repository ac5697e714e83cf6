/* lazydir-private.h: what the lazydir*.c files share: the tables on
 * disk and in memory (lazydir.c), used by the load's side
 * (lazydir-load.c) and the tree in use (lazydir-use.c). */
#ifndef OBOXFS_LAZYDIR_PRIVATE_H
#define OBOXFS_LAZYDIR_PRIVATE_H

#include "lazydir.h"
#include "ids.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

/* the largest table read back (20 bytes of stub per mail and its name:
   a million mails fit many times over) */
#define LAZYDIR_TABLE_MAX (256U * 1024 * 1024)
/* "<user>.<32 hex>": the id part */
#define LAZYDIR_ID_SUFFIX_LEN (1 + IDS_HEX_LEN)

struct lazy_cached {
	char name[NAME_MAX + 1];	/* "" if the slot is free */
	struct bundle_tree *tree;	/* sorted by name */
	uint64_t used;			/* lz->clock at its last use */
};

struct lazydir {
	int dir_fd;			/* CACHE_DIR/lazy; set at init */
	/* lock order 2a (obox-private.h): around every call below */
	pthread_mutex_t lock;
	struct lazy_cached cache[LAZYDIR_CACHE_TABLES];	/* lock */
	uint64_t clock;					/* lock */
	/* counters (atomic) */
	atomic_uint_fast64_t tables_written, stubs_made, dirs_expanded,
		tables_bad;
	/* tables on disk, or more, never fewer (atomic): lazydir_any() */
	atomic_uint_fast64_t live;
};

/* a table's file name "<user>.<32 hex>": true if name is one (of user,
   if not NULL); *user_len_r its user part's length */
bool lazydir_table_name_parse(const char *name, const char *user,
			      size_t *user_len_r);
/* the table name of dir_fd's xattr: 1, 0 if it has none, -1 with errno */
int lazydir_table_name_get(int dir_fd, char name_r[NAME_MAX + 1]);
/* the table of dir_fd (locked): 1 with *tree_r (the cache's, valid until
   the lock is released), 0 if the directory is not lazy, -1 with errno
   (logged) */
int lazydir_table_get(struct lazydir *lz, int dir_fd,
		      char name[NAME_MAX + 1],
		      const struct bundle_tree **tree_r);
/* keep tree (taken over) as table name's / forget it (locked) */
void lazydir_cache_put(struct lazydir *lz, const char *name,
		       struct bundle_tree **tree);
void lazydir_cache_drop(struct lazydir *lz, const char *name);
/* one table fewer on disk */
void lazydir_live_dec(struct lazydir *lz);

#endif
