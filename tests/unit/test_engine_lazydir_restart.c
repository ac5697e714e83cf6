/* test_engine_lazydir_restart.c: lazy tables across restarts on the same
 * cache (engine/cachestate.c's rules): a killed daemon whose user had
 * nothing unstored keeps the tree and its table and serves every mail
 * from it without loading again; a user changed since its upload (dirty)
 * is discarded, its table with it, and loaded again; a table that does
 * not read back discards the tree.  No mail is ever missing. */
#include "test_engine.h"
#include "obox-private.h"
#include "lazydir.h"

#include <dirent.h>

#define MAILS 300

TestSuite(engine_lazydir_restart, .init = eng_init, .fini = eng_fini);

static void fill(void)
{
	struct obox *a = eng_open("cache-a");
	char name[64];

	eng_make_user(a);
	for (unsigned int i = 0; i < MAILS; i++) {
		snprintf(name, sizeof(name), "m%04u", i);
		eng_deliver(a, ENG_USER "/Maildir", name, ENG_MAIL);
	}
	cr_assert_eq(obox_upload_now(a), 0);
	obox_deinit(&a);
}

static int new_fd(struct obox *obox)
{
	int fd = openat(obox_meta_fd(obox), ENG_USER "/Maildir/new",
			O_PATH | O_DIRECTORY);

	cr_assert_geq(fd, 0, "open new/: %s", strerror(errno));
	return fd;
}

static bool new_is_lazy(struct obox *obox)
{
	int fd = new_fd(obox);
	bool ret = lazydir_is_lazy(fd);

	close(fd);
	return ret;
}

static unsigned int count_dir(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *d;
	unsigned int n = 0;

	if (dir == NULL)
		return 0;
	while ((d = readdir(dir)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

static unsigned int tables(const char *cache)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s/lazy", eng_dir, cache);
	return count_dir(path);
}

/* every mail is there (made from the table when looked up) */
static void assert_all_mails(struct obox *obox)
{
	struct ouser *user = obox_user_get(obox, ENG_USER);
	char name[64], path[256];
	int fd = new_fd(obox);

	for (unsigned int i = 0; i < MAILS; i++) {
		snprintf(name, sizeof(name), "m%04u", i);
		snprintf(path, sizeof(path), ENG_USER "/Maildir/new/%s", name);
		if (faccessat(obox_meta_fd(obox), path, F_OK,
			      AT_SYMLINK_NOFOLLOW) < 0)
			cr_assert_eq(obox_lazy_lookup(obox, user, fd, name), 1,
				     "%s is missing", name);
		eng_assert_mail_stub(obox, path);
	}
	close(fd);
}

static struct obox *load_lazy(const char *cache)
{
	struct obox *b = eng_open(cache);

	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert(new_is_lazy(b));
	cr_assert_eq(eng_stat(b, "index_lazy_tables_written"), 1);
	cr_assert_eq(tables(cache), 1);
	return b;
}

Test(engine_lazydir_restart, killed_clean_user_keeps_the_table)
{
	struct obox *b;
	char path[4200];

	fill();
	b = load_lazy("cache-b");
	cr_assert_eq(obox_upload_now(b), 0);
	b->deinit_unclean = true;	/* as SIGKILL leaves it */
	obox_deinit(&b);

	b = eng_open("cache-b");
	snprintf(path, sizeof(path), ENG_USER "/Maildir/new");
	cr_assert_eq(faccessat(obox_meta_fd(b), path, F_OK, 0), 0,
		     "the tree was discarded");
	cr_assert(new_is_lazy(b));
	cr_assert_eq(tables("cache-b"), 1);
	snprintf(path, sizeof(path), "%s/cache-b/meta/" ENG_USER
		 "/Maildir/new", eng_dir);
	cr_assert_eq(count_dir(path), 0);
	assert_all_mails(b);
	cr_assert_eq(eng_stat(b, "index_users_loaded"), 0);
	cr_assert_eq(eng_stat(b, "index_lazy_stubs_made"), MAILS);
	obox_deinit(&b);
}

Test(engine_lazydir_restart, killed_dirty_user_is_loaded_again)
{
	struct ouser *user;
	struct obox *b;
	int fd;

	fill();
	b = load_lazy("cache-b");
	user = obox_user_get(b, ENG_USER);
	fd = new_fd(b);
	cr_assert_eq(obox_lazy_lookup(b, user, fd, "m0007"), 1);
	close(fd);
	b->deinit_unclean = true;
	obox_deinit(&b);

	b = eng_open("cache-b");
	cr_assert_neq(faccessat(obox_meta_fd(b), ENG_USER, F_OK, 0), 0,
		      "the dirty tree was kept");
	cr_assert_eq(tables("cache-b"), 0);
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert(new_is_lazy(b));
	cr_assert_eq(tables("cache-b"), 1);
	assert_all_mails(b);
	obox_deinit(&b);
}

Test(engine_lazydir_restart, bad_table_discards_the_tree)
{
	char path[4200];
	struct dirent *d;
	struct obox *b;
	DIR *dir;

	fill();
	b = load_lazy("cache-b");
	cr_assert_eq(obox_upload_now(b), 0);
	obox_deinit(&b);
	snprintf(path, sizeof(path), "%s/cache-b/lazy", eng_dir);
	dir = opendir(path);
	cr_assert_not_null(dir);
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] != '.') {
			char file[4500];

			snprintf(file, sizeof(file), "%s/%s", path, d->d_name);
			cr_assert_eq(truncate(file, 500), 0);
		}
	}
	closedir(dir);

	b = eng_open("cache-b");
	cr_assert_eq(eng_stat(b, "index_lazy_tables_bad"), 1);
	cr_assert_neq(faccessat(obox_meta_fd(b), ENG_USER, F_OK, 0), 0,
		      "a tree with a bad table was kept");
	cr_assert_eq(tables("cache-b"), 0);
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	assert_all_mails(b);
	obox_deinit(&b);
}
