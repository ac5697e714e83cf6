/* test_fs_inolock.c: the per-inode locks serializing writes against
 * stores: writers of one inode share it, a store excludes them, and other
 * inodes (even ones the old 64 lock stripes would have mixed up) never
 * wait. */
#include "inolock.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

static struct inolock_table *table;

static void init(void)
{
	table = inolock_init();
	cr_assert_not_null(table);
}

static void fini(void)
{
	inolock_deinit(&table);
	cr_assert_null(table);
}

TestSuite(fs_inolock, .init = init, .fini = fini, .timeout = 10);

struct locker {
	pthread_t thread;
	ino_t ino;
	bool exclusive;
	atomic_bool locked;
};

static void *locker_run(void *context)
{
	struct locker *l = context;

	inolock_lock(table, l->ino, l->exclusive);
	atomic_store(&l->locked, true);
	inolock_unlock(table, l->ino);
	return NULL;
}

/* start a thread locking ino; did it get the lock within 200 ms? */
static bool locks_soon(struct locker *l, ino_t ino, bool exclusive)
{
	l->ino = ino;
	l->exclusive = exclusive;
	atomic_init(&l->locked, false);
	cr_assert_eq(pthread_create(&l->thread, NULL, locker_run, l), 0);
	for (unsigned int i = 0; i < 20 && !atomic_load(&l->locked); i++)
		usleep(10 * 1000);
	return atomic_load(&l->locked);
}

struct lock_case {
	ino_t held;
	bool held_exclusive;
	ino_t wanted;
	bool wanted_exclusive;
	bool waits;
};

ParameterizedTestParameters(fs_inolock, conflicts)
{
	static struct lock_case cases[] = {
		/* a store excludes writes and other stores of its inode */
		{ 5, true, 5, false, true },
		{ 5, true, 5, true, true },
		{ 5, false, 5, true, true },
		/* writes share it */
		{ 5, false, 5, false, false },
		/* other inodes never wait, even in the same old stripe */
		{ 5, true, 5 + 64, false, false },
		{ 5, true, 5 + 256, true, false },
		{ 7, true, 8, true, false },
	};

	return cr_make_param_array(struct lock_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct lock_case *c, fs_inolock, conflicts)
{
	struct locker l;

	inolock_lock(table, c->held, c->held_exclusive);
	cr_assert_eq(locks_soon(&l, c->wanted, c->wanted_exclusive),
		     !c->waits);
	inolock_unlock(table, c->held);
	pthread_join(l.thread, NULL);
	cr_assert(atomic_load(&l.locked));
}
