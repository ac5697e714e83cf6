/* inolock.c: per-inode reader/writer locks, made on demand (see inolock.h). */
#include "inolock.h"

#include "log.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define INOLOCK_BUCKETS 256

struct inolock {
	struct inolock *next;
	ino_t ino;
	unsigned int refs;	/* lockers holding or waiting for it */
	pthread_rwlock_t rw;
};

struct inolock_table {
	pthread_mutex_t lock;
	struct inolock *buckets[INOLOCK_BUCKETS];	/* protected by lock */
};

struct inolock_table *inolock_init(void)
{
	struct inolock_table *table = calloc(1, sizeof(*table));

	if (table == NULL)
		return NULL;
	pthread_mutex_init(&table->lock, NULL);
	return table;
}

void inolock_deinit(struct inolock_table **_table)
{
	struct inolock_table *table = *_table;

	if (table == NULL)
		return;
	*_table = NULL;
	for (unsigned int i = 0; i < INOLOCK_BUCKETS; i++) {
		while (table->buckets[i] != NULL) {
			struct inolock *l = table->buckets[i];

			table->buckets[i] = l->next;
			pthread_rwlock_destroy(&l->rw);
			free(l);
		}
	}
	pthread_mutex_destroy(&table->lock);
	free(table);
}

static struct inolock **find(struct inolock_table *table, ino_t ino)
{
	struct inolock **lp = &table->buckets[ino % INOLOCK_BUCKETS];

	while (*lp != NULL && (*lp)->ino != ino)
		lp = &(*lp)->next;
	return lp;
}

void inolock_lock(struct inolock_table *table, ino_t ino, bool exclusive)
{
	struct inolock **lp, *l;

	pthread_mutex_lock(&table->lock);
	lp = find(table, ino);
	l = *lp;
	if (l == NULL) {
		l = calloc(1, sizeof(*l));
		if (l == NULL) {
			obox_log(OBOX_LOG_ERR, "inode lock: out of memory\n");
			abort();
		}
		l->ino = ino;
		pthread_rwlock_init(&l->rw, NULL);
		*lp = l;
	}
	l->refs++;
	pthread_mutex_unlock(&table->lock);
	if (exclusive)
		pthread_rwlock_wrlock(&l->rw);
	else
		pthread_rwlock_rdlock(&l->rw);
}

void inolock_unlock(struct inolock_table *table, ino_t ino)
{
	struct inolock **lp, *l;

	pthread_mutex_lock(&table->lock);
	lp = find(table, ino);
	l = *lp;
	if (l == NULL) {
		obox_log(OBOX_LOG_ERR, "inode lock: unlock of %ju not locked\n",
			 (uintmax_t)ino);
		abort();
	}
	pthread_rwlock_unlock(&l->rw);
	if (--l->refs == 0) {
		*lp = l->next;
		pthread_rwlock_destroy(&l->rw);
		free(l);
	}
	pthread_mutex_unlock(&table->lock);
}
