/* test_fs_users_delivery_count.c: the per-user registry: deliveries are
 * counted per folder and per user and reach the upload limit every N,
 * a user is dirty from a change until an upload covers it, and users_get()
 * gives one struct per name, also from several threads at once, and an
 * upload snapshot waits for a change in progress. */
#include "test_fs_upload.h"

#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

TestSuite(fs_users_delivery_count, .init = up_init, .fini = up_fini);

/* arrays, not pointers: criterion runs each case in a new process */
struct limit_case {
	unsigned int limit;
};

ParameterizedTestParameters(fs_users_delivery_count, every_nth_delivery)
{
	static struct limit_case cases[] = { { 1 }, { 2 }, { 5 }, { 50 } };

	return cr_make_param_array(struct limit_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct limit_case *c, fs_users_delivery_count,
		  every_nth_delivery)
{
	for (unsigned int i = 1; i <= 3 * c->limit; i++) {
		bool reached = users_count_delivery(up_users, up_user,
						    GUID_INBOX, c->limit);

		cr_assert_eq(reached, i % c->limit == 0,
			     "delivery %u of limit %u: %d", i, c->limit,
			     reached);
	}
}

Test(fs_users_delivery_count, folders_count_separately)
{
	/* 2 to INBOX, 2 to Sent: neither reaches 3 */
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_INBOX, 3));
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_SENT, 3));
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_INBOX, 3));
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_SENT, 3));
	cr_assert(users_count_delivery(up_users, up_user, GUID_INBOX, 3));
	/* INBOX's reset does not touch Sent's count */
	cr_assert(users_count_delivery(up_users, up_user, GUID_SENT, 3));
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_INBOX, 3));
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_SENT, 3));
}

Test(fs_users_delivery_count, many_folders)
{
	char guid[IDS_HEX_LEN + 1];

	/* one delivery to each of 100 folders, then a second: none
	   reaches 3; the third to each does */
	for (unsigned int round = 1; round <= 3; round++) {
		for (unsigned int f = 0; f < 100; f++) {
			snprintf(guid, sizeof(guid), "%032x", f);
			cr_assert_eq(users_count_delivery(up_users, up_user,
							  guid, 3),
				     round == 3, "folder %u round %u", f,
				     round);
		}
	}
}

Test(fs_users_delivery_count, users_count_separately)
{
	struct ouser *other = users_get(up_users, "other@example.com");

	cr_assert_not_null(other);
	cr_assert_neq(other, up_user);
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_INBOX, 3));
	cr_assert_not(users_count_delivery(up_users, up_user, GUID_INBOX, 3));
	cr_assert_not(users_count_delivery(up_users, other, GUID_INBOX, 3));
	cr_assert_not(users_count_delivery(up_users, other, GUID_INBOX, 3));
	cr_assert(users_count_delivery(up_users, up_user, GUID_INBOX, 3));
	cr_assert(users_count_delivery(up_users, other, GUID_INBOX, 3));
}

Test(fs_users_delivery_count, dirty_until_uploaded)
{
	up_make_tree();
	/* a new user has nothing to upload */
	cr_assert_not(users_is_dirty(up_user));
	cr_assert_not(up_dirty_marker_exists());

	users_change_begin(up_users, up_user);
	/* the marker exists before the change is made */
	cr_assert(up_dirty_marker_exists());
	users_change_end(up_user);
	cr_assert(users_is_dirty(up_user));

	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	cr_assert_not(users_is_dirty(up_user));
	cr_assert_not(up_dirty_marker_exists());

	/* the next change marks it again */
	up_changed();
	cr_assert(users_is_dirty(up_user));
	cr_assert(up_dirty_marker_exists());
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	cr_assert_not(users_is_dirty(up_user));
	cr_assert_not(up_dirty_marker_exists());

	/* a NULL user (outside any user tree) changes nothing */
	users_change_begin(up_users, NULL);
	users_change_end(NULL);
	users_touch(NULL);
	cr_assert_not(users_is_dirty(up_user));
}

Test(fs_users_delivery_count, dirty_marker_lost_is_recreated_after_upload)
{
	char path[4096];

	up_make_tree();
	up_changed();
	/* the marker is removed behind the daemon's back (e.g. a cleanup):
	   after an upload the next change must create it again */
	snprintf(path, sizeof(path), "%s/state/dirty/" UP_USER, up_cache);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	up_changed();
	cr_assert(up_dirty_marker_exists());
}

Test(fs_users_delivery_count, get_same_user_for_same_name)
{
	struct ouser *a = users_get(up_users, UP_USER);
	struct ouser *b = users_get(up_users, "other@example.com");
	char h1[3], h2[4], prefix[512];

	cr_assert_eq(a, up_user);
	cr_assert_neq(a, b);
	cr_assert_eq(users_get(up_users, "other@example.com"), b);
	cr_assert_str_eq(b->name, "other@example.com");
	ids_user_hash("other@example.com", h1, h2);
	snprintf(prefix, sizeof(prefix), "%s/%s/other@example.com", h1, h2);
	cr_assert_str_eq(b->prefix, prefix);
	cr_assert_eq(users_count(up_users), 2);
}

#define THREADS 8
#define NAMES 300

struct get_thread {
	pthread_t thread;
	unsigned int index;
	struct ouser *users[NAMES];
};

static pthread_barrier_t barrier;

static void *get_thread_main(void *context)
{
	struct get_thread *t = context;
	char name[64];

	pthread_barrier_wait(&barrier);
	for (unsigned int n = 0; n < NAMES; n++) {
		/* each thread goes through the names in another order */
		unsigned int i = (n * 7 + t->index * 37) % NAMES;

		snprintf(name, sizeof(name), "user%u@example.com", i);
		t->users[i] = users_get(up_users, name);
	}
	return NULL;
}

Test(fs_users_delivery_count, get_from_many_threads)
{
	static struct get_thread threads[THREADS];
	struct ouser **list;
	unsigned int count;

	cr_assert_eq(pthread_barrier_init(&barrier, NULL, THREADS), 0);
	for (unsigned int i = 0; i < THREADS; i++) {
		threads[i].index = i;
		cr_assert_eq(pthread_create(&threads[i].thread, NULL,
					    get_thread_main, &threads[i]), 0);
	}
	for (unsigned int i = 0; i < THREADS; i++)
		pthread_join(threads[i].thread, NULL);
	pthread_barrier_destroy(&barrier);

	for (unsigned int n = 0; n < NAMES; n++) {
		char name[64];

		snprintf(name, sizeof(name), "user%u@example.com", n);
		cr_assert_not_null(threads[0].users[n]);
		cr_assert_str_eq(threads[0].users[n]->name, name);
		for (unsigned int i = 1; i < THREADS; i++) {
			cr_assert_eq(threads[i].users[n], threads[0].users[n],
				     "thread %u got another %s", i, name);
		}
	}
	/* the fixture's user and the 300 */
	cr_assert_eq(users_count(up_users), NAMES + 1);
	cr_assert_eq(users_list(up_users, &list, &count), 0);
	cr_assert_eq(count, NAMES + 1);
	for (unsigned int i = 0; i < count; i++) {
		for (unsigned int j = i + 1; j < count; j++)
			cr_assert_neq(list[i], list[j]);
	}
	free(list);
}

static atomic_bool upload_done;
static int upload_ret = -2;

static void *upload_thread_main(void *context)
{
	(void)context;
	upload_ret = upload_user(up_ctx, up_user, NULL);
	atomic_store(&upload_done, true);
	return NULL;
}

Test(fs_users_delivery_count, upload_waits_for_change_in_progress)
{
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	pthread_t thread;

	up_make_tree();
	/* an operation is half-way through its change */
	users_change_begin(up_users, up_user);
	up_write("Maildir/dovecot.index.log", "half", 4, true);
	cr_assert_eq(pthread_create(&thread, NULL, upload_thread_main, NULL),
		     0);
	nanosleep(&ts, NULL);
	cr_assert_not(atomic_load(&upload_done),
		      "the snapshot was taken during a change");
	up_write("Maildir/dovecot.index.log", "done", 4, true);
	users_change_end(up_user);
	pthread_join(thread, NULL);
	cr_assert_eq(upload_ret, 0);
	cr_assert_not(users_is_dirty(up_user));

	/* the stored tree has the whole change */
	struct up_bundles b;
	struct bundle *bundle;
	const struct bundle_entry *e;

	up_assert_bundles(GUID_INBOX, 0, &b);
	bundle = up_get_bundle(b.base);
	e = bundle_tree_find(bundle->tree, "dovecot.index.log");
	cr_assert_not_null(e);
	cr_assert_eq(e->size, 308);
	cr_assert_arr_eq(e->data + 300, "halfdone", 8);
	bundle_free(&bundle);
}
