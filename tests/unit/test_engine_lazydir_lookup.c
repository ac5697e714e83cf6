/* test_engine_lazydir_lookup.c: a lookup of a name a lazy directory's
 * table has creates exactly that stub (key, size, mode, mtime as the load
 * would have written them) and keeps the directory's mtime; other names
 * and other directories create nothing. */
#include "test_engine_lazydir.h"

TestSuite(engine_lazydir_lookup, .init = lz_init, .fini = lz_fini);

#define NAME42 "1600000042.M42P1.host:2,S"

Test(engine_lazydir_lookup, one_name_one_stub)
{
	int fd;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_lookup(lz, fd, NAME42), 1);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 1);
	lz_stub_check("Maildir/cur/" NAME42);
	lz_mtime_check("Maildir/cur");
	/* there now: looked up again, nothing more */
	cr_assert_eq(lazydir_lookup(lz, fd, NAME42), 1);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 1);
	/* still lazy: the rest is in the table */
	cr_assert(lazydir_is_lazy(fd));
	close(fd);
}

Test(engine_lazydir_lookup, after_restart)
{
	int fd;

	lz_load(LZ_STUBS);
	lz_restart(NULL, NULL);
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_lookup(lz, fd, "1600000299.M299P1.host:2,S"), 1);
	lz_stub_check("Maildir/cur/1600000299.M299P1.host:2,S");
	lz_mtime_check("Maildir/cur");
	close(fd);
}

Test(engine_lazydir_lookup, unknown_names_and_plain_dirs)
{
	int fd;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_lookup(lz, fd, "dovecot.index"), 0);
	cr_assert_eq(lazydir_lookup(lz, fd, NAME42 "x"), 0);
	close(fd);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 0);
	fd = lz_open("Maildir/new");
	cr_assert_eq(lazydir_lookup(lz, fd, NAME42), 0);
	close(fd);
	cr_assert_eq(lz_dir_count("Maildir/new"), LZ_NEW);
	lz_mtime_check("Maildir/cur");
}

Test(engine_lazydir_lookup, o_path_fd)
{
	/* the front end's directory fds are O_PATH */
	int fd = -1;

	lz_load(LZ_STUBS);
	fd = openat(lz_user_fd, "Maildir/cur", O_PATH | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert(lazydir_is_lazy(fd));
	cr_assert_eq(lazydir_lookup(lz, fd, "1600000007.M7P1.host:2,S"), 1);
	lz_stub_check("Maildir/cur/1600000007.M7P1.host:2,S");
	close(fd);
}
