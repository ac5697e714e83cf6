/* test_engine_lazydir_expand.c: what enumerates or changes a lazy
 * directory materializes all of it first: every stub as the load would
 * have written it (those made by lookups before kept), the directory's
 * mtime as restored, the mark and the table gone; a name removed after
 * that does not come back, not after a restart either. */
#include "test_engine_lazydir.h"

TestSuite(engine_lazydir_expand, .init = lz_init, .fini = lz_fini);

Test(engine_lazydir_expand, all_stubs_mtime_kept_table_gone)
{
	int fd;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_lookup(lz, fd, "1600000003.M3P1.host:2,S"), 1);
	cr_assert_eq(lazydir_expand(lz, fd), 1);
	cr_assert_eq(lz_dir_count("Maildir/cur"), LZ_STUBS);
	for (size_t i = 0; i < lz_orig->count; i++) {
		if (lz_orig->entries[i].type == BUNDLE_ENTRY_STUB)
			lz_stub_check(lz_orig->entries[i].path);
	}
	lz_mtime_check("Maildir/cur");
	cr_assert_not(lazydir_is_lazy(fd));
	cr_assert_eq(lz_table_count(), 0);
	cr_assert_not(lazydir_any(lz));
	/* not lazy any more: nothing to do */
	cr_assert_eq(lazydir_expand(lz, fd), 0);
	close(fd);
}

Test(engine_lazydir_expand, unlinked_name_does_not_come_back)
{
	const char *name = "1600000010.M10P1.host:2,S";
	int fd;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_expand(lz, fd), 1);
	cr_assert_eq(unlinkat(fd, name, 0), 0);
	cr_assert_eq(lazydir_lookup(lz, fd, name), 0);
	close(fd);
	lz_restart(NULL, NULL);
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_lookup(lz, fd, name), 0);
	cr_assert_eq(lz_dir_count("Maildir/cur"), LZ_STUBS - 1);
	close(fd);
}

Test(engine_lazydir_expand, not_lazy_is_untouched)
{
	struct stat before, after;
	int fd;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/new");
	cr_assert_eq(fstat(fd, &before), 0);
	cr_assert_eq(lazydir_expand(lz, fd), 0);
	cr_assert_eq(fstat(fd, &after), 0);
	cr_assert_eq(before.st_ctim.tv_nsec, after.st_ctim.tv_nsec);
	cr_assert_eq(lz_table_count(), 1);
	close(fd);
}

Test(engine_lazydir_expand, prepare_by_name)
{
	const char *table_name = "1600000020.M20P1.host:2,S";
	int fd;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/cur");
	/* a name the table lacks (a delivery): nothing to do */
	cr_assert_eq(lazydir_prepare(lz, fd, "new-mail:2,", false), 0);
	cr_assert_eq(lazydir_prepare(lz, fd, "new-mail:2,", true), 0);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 0);
	/* a name of the table added or replaced: that stub only */
	cr_assert_eq(lazydir_prepare(lz, fd, table_name, false), 0);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 1);
	lz_stub_check("Maildir/cur/1600000020.M20P1.host:2,S");
	cr_assert(lazydir_is_lazy(fd));
	lz_mtime_check("Maildir/cur");
	/* removed: the whole directory first, the table gone */
	cr_assert_eq(lazydir_prepare(lz, fd, table_name, true), 0);
	cr_assert_eq(lz_dir_count("Maildir/cur"), LZ_STUBS);
	cr_assert_not(lazydir_is_lazy(fd));
	cr_assert_eq(lz_table_count(), 0);
	lz_mtime_check("Maildir/cur");
	cr_assert_eq(unlinkat(fd, table_name, 0), 0);
	cr_assert_eq(lazydir_lookup(lz, fd, table_name), 0);
	close(fd);
}
