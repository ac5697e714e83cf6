/* test_engine_lazydir_list.c: a readdir of a lazy directory lists every
 * name (those on disk, made by lookups or put back, and the table's), each
 * once, and materializes nothing: no stub created, the table and the
 * directory's mtime kept; a directory that is not lazy is not listed. */
#include "test_engine_lazydir.h"

TestSuite(engine_lazydir_list, .init = lz_init, .fini = lz_fini);

struct names {
	char **names;
	size_t count;
};

static void add(const char *name, unsigned char type, uint64_t ino,
		void *context)
{
	struct names *n = context;

	cr_assert_neq(ino, 0);
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return;
	cr_assert_eq(type, DT_REG, "%s", name);
	n->names = realloc(n->names, (n->count + 1) * sizeof(*n->names));
	n->names[n->count++] = strdup(name);
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(engine_lazydir_list, every_name_once_nothing_made)
{
	struct names n = { 0 };
	int fd, stub;

	lz_load(LZ_STUBS);
	fd = lz_open("Maildir/cur");
	cr_assert_eq(lazydir_lookup(lz, fd, "1600000005.M5P1.host:2,S"), 1);
	/* a mail put back by a load is on disk only */
	stub = openat(fd, "extra:2,", O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(stub, 0);
	close(stub);
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { LZ_DIR_MTIME, 5000 } };
	cr_assert_eq(futimens(fd, ts), 0);
	cr_assert_eq(lazydir_list(lz, fd, add, &n), 1);
	cr_assert_eq(n.count, LZ_STUBS + 1);
	qsort(n.names, n.count, sizeof(*n.names), cmp);
	for (size_t i = 1; i < n.count; i++)
		cr_assert_str_neq(n.names[i - 1], n.names[i]);
	cr_assert(bsearch(&(const char *){ "extra:2," }, n.names, n.count,
			  sizeof(*n.names), cmp) != NULL);
	cr_assert_eq(lz_dir_count("Maildir/cur"), 2);
	cr_assert(lazydir_is_lazy(fd));
	cr_assert_eq(lz_table_count(), 1);
	lz_mtime_check("Maildir/cur");
	for (size_t i = 0; i < n.count; i++)
		free(n.names[i]);
	free(n.names);
	memset(&n, 0, sizeof(n));
	close(fd);
	fd = lz_open("Maildir/new");
	cr_assert_eq(lazydir_list(lz, fd, add, &n), 0);
	cr_assert_eq(n.count, 0);
	close(fd);
}
