/* sizelock.c: growth of files the kernel may not know yet (obox.h,
 * obox_size_grow_begin()).
 *
 * Per inode number: how many growths are pending (a write or fallocate
 * grew the file and the kernel has not taken the new size yet) and how
 * many attribute replies are measuring the file.  A measurement waits
 * (bounded) for the pending growths, a growth begins only while nothing
 * measures; a growth is ended by whichever thread sees the kernel caught
 * up, not necessarily the one that began it (so no rwlock).  Entries are
 * made on demand and freed when idle; one mutex and one condition
 * variable: a measurement is an fstat(), a growth's wait microseconds.
 * obox_size_measure_try() does not wait: the front end polls the kernel's
 * size itself while a growth is pending (fs/kernelsize.c).
 */
#include "obox-private.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define SIZELOCK_BUCKETS 256

struct sizelock {
	struct sizelock *next;
	ino_t ino;
	unsigned int pending, measuring, waiting;
};

struct sizelock_table {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct sizelock *buckets[SIZELOCK_BUCKETS];	/* protected by lock */
};

struct sizelock_table *sizelock_init(void)
{
	struct sizelock_table *t = calloc(1, sizeof(*t));
	pthread_condattr_t attr;

	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t->changed, &attr);
	pthread_condattr_destroy(&attr);
	return t;
}

void sizelock_deinit(struct sizelock_table **_t)
{
	struct sizelock_table *t = *_t;

	if (t == NULL)
		return;
	*_t = NULL;
	for (unsigned int i = 0; i < SIZELOCK_BUCKETS; i++) {
		while (t->buckets[i] != NULL) {
			struct sizelock *l = t->buckets[i];

			t->buckets[i] = l->next;
			free(l);
		}
	}
	pthread_cond_destroy(&t->changed);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ino's entry, made if missing (aborts if out of memory: there is no way
   to go on without it, like the inode locks).  Call with lock held. */
static struct sizelock *get_locked(struct sizelock_table *t, ino_t ino)
{
	struct sizelock **lp = &t->buckets[ino % SIZELOCK_BUCKETS];

	while (*lp != NULL && (*lp)->ino != ino)
		lp = &(*lp)->next;
	if (*lp == NULL) {
		*lp = calloc(1, sizeof(**lp));
		if (*lp == NULL) {
			obox_log(OBOX_LOG_ERR, "size lock: out of memory\n");
			abort();
		}
		(*lp)->ino = ino;
	}
	return *lp;
}

/* Free ino's entry if nothing uses it.  Call with lock held. */
static void put_locked(struct sizelock_table *t, ino_t ino)
{
	struct sizelock **lp = &t->buckets[ino % SIZELOCK_BUCKETS], *l;

	while (*lp != NULL && (*lp)->ino != ino)
		lp = &(*lp)->next;
	l = *lp;
	if (l != NULL && l->pending == 0 && l->measuring == 0 &&
	    l->waiting == 0) {
		*lp = l->next;
		free(l);
	}
}

void obox_size_grow_begin(struct obox *obox, ino_t ino)
{
	struct sizelock_table *t = obox->size_locks;
	struct sizelock *l;

	pthread_mutex_lock(&t->lock);
	l = get_locked(t, ino);
	l->waiting++;
	while (l->measuring > 0)
		pthread_cond_wait(&t->changed, &t->lock);
	l->waiting--;
	l->pending++;
	pthread_mutex_unlock(&t->lock);
}

void obox_size_grow_end(struct obox *obox, ino_t ino)
{
	struct sizelock_table *t = obox->size_locks;
	struct sizelock *l;

	pthread_mutex_lock(&t->lock);
	l = get_locked(t, ino);
	if (l->pending == 0) {
		obox_log(OBOX_LOG_ERR, "size lock: growth of %ju ended twice\n",
			 (uintmax_t)ino);
		abort();
	}
	l->pending--;
	put_locked(t, ino);
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
}

void obox_size_measure_begin(struct obox *obox, ino_t ino,
			     unsigned int timeout_ms)
{
	struct sizelock_table *t = obox->size_locks;
	struct sizelock *l;
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&t->lock);
	l = get_locked(t, ino);
	l->waiting++;
	while (l->pending > 0 &&
	       pthread_cond_timedwait(&t->changed, &t->lock,
				      &deadline) != ETIMEDOUT)
		;
	l->waiting--;
	l->measuring++;
	pthread_mutex_unlock(&t->lock);
}

bool obox_size_measure_try(struct obox *obox, ino_t ino)
{
	struct sizelock_table *t = obox->size_locks;
	struct sizelock *l;
	bool free_now;

	pthread_mutex_lock(&t->lock);
	l = get_locked(t, ino);
	free_now = l->pending == 0;
	if (free_now)
		l->measuring++;
	else
		put_locked(t, ino);
	pthread_mutex_unlock(&t->lock);
	return free_now;
}

void obox_size_measure_end(struct obox *obox, ino_t ino)
{
	struct sizelock_table *t = obox->size_locks;
	struct sizelock *l;

	pthread_mutex_lock(&t->lock);
	l = get_locked(t, ino);
	l->measuring--;
	put_locked(t, ino);
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
}
