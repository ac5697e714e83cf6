/* test_fs_mailstore.c: storing a mail file (mailstore_store()) on a file://
 * store: the object's name, bytes and metadata, the stub left behind, the
 * folder GUID, the mail cache (hit, miss fetched once, wrong size), turning
 * a stub back into a file, and failures that must change nothing. */
#include "helper-objstore.h"
#include "ids.h"
#include "keys.h"
#include "mailcache.h"
#include "mailstore.h"
#include "objgc.h"
#include "objstore.h"
#include "stub.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAIL "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
#define FOLDER "user@example.com/Maildir/.Sent"
#define NEWDIR FOLDER "/new"

static char *dir;
static int meta_fd = -1;
static struct objstore *store;
static struct mailcache *mc;
static struct objgc *gc;

/* the name in dir, classified as the engine's name operations do */
static int place_at(struct mailstore *ms, const char *pdir, const char *name,
		    struct mail_place *place_r)
{
	int ret = mailstore_place(ms, pdir, name, place_r);

	if (ret == 0)
		errno = EINVAL;	/* not a mail location */
	return ret > 0 ? 0 : -1;
}

static int store_at(struct mailstore *ms, int fd, const char *pdir,
		    const char *name)
{
	struct mail_place place;

	if (place_at(ms, pdir, name, &place) < 0)
		return -1;
	return mailstore_store(ms, fd, &place);
}

static int relocate_to(struct mailstore *ms, const struct stub *old,
		       const char *pdir, const char *name, struct stub *new_r)
{
	struct mail_place place;

	if (place_at(ms, pdir, name, &place) < 0)
		return -1;
	return mailstore_relocate(ms, old, &place, new_r);
}

static uint64_t released_count(void)
{
	struct objgc_stats stats;

	objgc_get_stats(gc, &stats);
	return stats.released;
}

/* what the uploader does once a bundle is stored: condemn what was
   released, then delete it */
static void collect_garbage(void)
{
	struct objgc_batch batch;

	objgc_take_pending(gc, "", &batch);
	objgc_condemn_batch(gc, &batch);
	cr_assert_eq(objgc_flush(gc), 0);
}
static struct mailstore *ms;

static void setup_store(const char *fault)
{
	struct objstore_settings set = { .no_fsync = true, .fault = fault };
	char path[4096];
	const char *error;

	store = objtest_open_posix_store(dir, &set);
	snprintf(path, sizeof(path), "%s/mail", dir);
	cr_assert_eq(mailcache_init(path, 1024 * 1024, store, &mc, &error), 0,
		     "%s", error);
	gc = objgc_init(store, mc, NULL);
	ms = mailstore_init(store, mc, gc, meta_fd);
	cr_assert_not_null(ms);
}

static void init(void)
{
	char path[4096];

	dir = objtest_mkdtemp("mailstore");
	cr_assert_not_null(dir);
	snprintf(path, sizeof(path), "%s/meta", dir);
	cr_assert_eq(mkdir(path, 0700), 0);
	meta_fd = open(path, O_PATH | O_DIRECTORY);
	cr_assert_geq(meta_fd, 0);
	cr_assert_eq(mkdirat(meta_fd, "user@example.com", 0700), 0);
	cr_assert_eq(mkdirat(meta_fd, "user@example.com/Maildir", 0700), 0);
	cr_assert_eq(mkdirat(meta_fd, FOLDER, 0700), 0);
	cr_assert_eq(mkdirat(meta_fd, NEWDIR, 0700), 0);
}

static void fini(void)
{
	mailstore_deinit(&ms);
	objgc_deinit(&gc);
	mailcache_deinit(&mc);
	if (store != NULL)
		objstore_deinit(&store);
	if (meta_fd >= 0)
		close(meta_fd);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(fs_mailstore, .init = init, .fini = fini);

static int make_file(const char *name, const char *content)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), NEWDIR "/%s", name);
	fd = openat(meta_fd, path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, strlen(content)),
		     (ssize_t)strlen(content));
	return fd;
}

static int count_cb(const struct objstore_list_entry *e, void *context)
{
	(void)e;
	(*(unsigned int *)context)++;
	return 0;
}

static unsigned int count_objects(void)
{
	unsigned int n = 0;

	cr_assert_eq(objstore_list(store, "", NULL, count_cb, &n), 0);
	return n;
}

static void read_stub(int fd, struct stub *stub_r)
{
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 0, "a stored mail leaves an empty stub");
	cr_assert_eq(stub_read(fd, &st, stub_r), 1);
}

Test(fs_mailstore, store_names_object_and_leaves_stub)
{
	struct objstore_stat ost;
	struct stub stub;
	char guid[64], expect[OBJSTORE_KEY_MAX + 1];
	void *data;
	size_t size;
	int fd, dfd;

	setup_store(NULL);
	fd = make_file("1.M1.host,S=40", MAIL);
	cr_assert_eq(store_at(ms, fd, NEWDIR, "1.M1.host,S=40"), 0,
		     "%s", strerror(errno));
	read_stub(fd, &stub);
	cr_assert_eq(stub.size, strlen(MAIL));

	/* key: <h1>/<h2>/<user>/mailboxes/<folder guid>/<oid> */
	dfd = openat(meta_fd, FOLDER, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dfd, 0);
	ssize_t len = fgetxattr(dfd, BUNDLE_XATTR_GUID, guid, sizeof(guid) - 1);
	cr_assert_eq(len, IDS_HEX_LEN);
	guid[len] = '\0';
	close(dfd);
	cr_assert(ids_is_hex_id(guid));
	cr_assert_eq(keys_mail_key("user@example.com", guid,
				  keys_key_oid(stub.key), expect,
				  sizeof(expect)), 0);
	cr_assert_str_eq(stub.key, expect);
	cr_assert_eq(strncmp(stub.key, "b4/c9a/user@example.com/mailboxes/",
			     34), 0);

	/* bytes and metadata */
	cr_assert_eq(objstore_get(store, stub.key, 0, OBJSTORE_TO_END, 1 << 20,
				  &data, &size), 0);
	cr_assert_eq(size, strlen(MAIL));
	cr_assert_eq(memcmp(data, MAIL, size), 0);
	free(data);
	cr_assert_eq(objstore_head(store, stub.key, &ost), 0);
	cr_assert_str_eq(objstore_stat_meta(&ost, "path"), "Maildir/.Sent/new");
	cr_assert_str_eq(objstore_stat_meta(&ost, "name"), "1.M1.host,S=40");
	objstore_stat_free(&ost);
	close(fd);

	/* a second mail of the folder: same GUID, new oid */
	struct stub stub2;

	fd = make_file("2.M2.host", "x");
	cr_assert_eq(store_at(ms, fd, NEWDIR, "2.M2.host"), 0);
	read_stub(fd, &stub2);
	cr_assert_str_neq(stub2.key, stub.key);
	cr_assert_eq(strncmp(stub2.key, stub.key, strlen(stub.key) - 32), 0);
	/* storing a stub again does nothing */
	cr_assert_eq(store_at(ms, fd, NEWDIR, "2.M2.host"), 0);
	close(fd);
	cr_assert_eq(count_objects(), 2);
}

Test(fs_mailstore, cache_hit_then_miss_fetches)
{
	struct cachedir_stats stats;
	struct stub stub;
	char buf[256];
	int fd, cfd;

	setup_store(NULL);
	fd = make_file("m", MAIL);
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), 0);
	read_stub(fd, &stub);
	close(fd);

	cr_assert_eq(mailcache_open(mc, stub.key, stub.size, &cfd), 0);
	cr_assert_eq(pread(cfd, buf, sizeof(buf), 0), (ssize_t)strlen(MAIL));
	close(cfd);
	mailcache_get_stats(mc, &stats);
	cr_assert_eq(stats.hits, 1);
	cr_assert_eq(stats.misses, 0);

	mailcache_remove(mc, stub.key);
	cr_assert_eq(mailcache_open(mc, stub.key, stub.size, &cfd), 0);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(pread(cfd, buf, sizeof(buf), 0), (ssize_t)strlen(MAIL));
	cr_assert_eq(memcmp(buf, MAIL, strlen(MAIL)), 0);
	close(cfd);
	mailcache_get_stats(mc, &stats);
	cr_assert_eq(stats.misses, 1);

	/* an object whose size differs from its stub's is refused */
	mailcache_remove(mc, stub.key);
	errno = 0;
	cr_assert_eq(mailcache_open(mc, stub.key, stub.size + 1, &cfd), -1);
	cr_assert_eq(errno, EIO);
	mailcache_get_stats(mc, &stats);
	cr_assert_eq(stats.fetch_errors, 1);
}

Test(fs_mailstore, unstub_restores_bytes_and_keeps_object_until_stored)
{
	struct stub stub, stub2, dummy;
	struct stat st;
	char buf[256], oldkey[OBJSTORE_KEY_MAX + 1];
	int fd;

	setup_store(NULL);
	fd = make_file("m", MAIL);
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), 0);
	read_stub(fd, &stub);
	cr_assert_eq(mailstore_unstub(ms, fd, true), 0, "%s", strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, (off_t)strlen(MAIL));
	cr_assert_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t)strlen(MAIL));
	cr_assert_eq(memcmp(buf, MAIL, strlen(MAIL)), 0);
	cr_assert_eq(stub_read(fd, &st, &dummy), 0);
	/* the old object is the only durable copy until the new one is
	   stored */
	cr_assert_eq(count_objects(), 1);
	cr_assert_eq(released_count(), 0);
	cr_assert_eq(stub_read_oldkey(fd, oldkey), 1);
	cr_assert_str_eq(oldkey, stub.key);
	/* a plain file is left alone */
	cr_assert_eq(mailstore_unstub(ms, fd, true), 0);
	cr_assert_eq(pwrite(fd, "X", 1, 0), 1);
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), 0);
	read_stub(fd, &stub2);
	cr_assert_str_neq(stub2.key, stub.key);
	/* released, but deleted only once a bundle without it is stored */
	cr_assert_eq(count_objects(), 2);
	cr_assert_eq(released_count(), 1);
	collect_garbage();
	cr_assert_eq(count_objects(), 1);
	cr_assert_eq(stub_read_oldkey(fd, oldkey), 0);
	close(fd);
}

Test(fs_mailstore, unstub_without_content)
{
	struct stub stub;
	struct stat st;
	int fd;

	setup_store(NULL);
	fd = make_file("m", MAIL);
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), 0);
	read_stub(fd, &stub);
	cr_assert_eq(mailstore_unstub(ms, fd, false), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 0);
	cr_assert_eq(stub_read(fd, &st, &stub), 0);
	cr_assert_eq(count_objects(), 1);
	/* stored again (empty): now the old object is released */
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), 0);
	cr_assert_eq(released_count(), 1);
	collect_garbage();
	cr_assert_eq(count_objects(), 1);
	close(fd);
}

Test(fs_mailstore, put_failure_changes_nothing)
{
	struct stat st;
	struct stub stub;
	int fd;

	setup_store("ops=put;error=permanent");
	fd = make_file("m", MAIL);
	errno = 0;
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), -1);
	cr_assert_eq(errno, EIO);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, (off_t)strlen(MAIL));
	cr_assert_eq(stub_read(fd, &st, &stub), 0);
	close(fd);
}

Test(fs_mailstore, long_names_refused)
{
	char name[300];
	struct stat st;
	struct stub stub;
	int fd;

	setup_store(NULL);
	memset(name, 'n', 255);
	name[255] = '\0';
	fd = make_file(name, MAIL);
	/* 255 bytes fit a metadata value */
	cr_assert_eq(store_at(ms, fd, NEWDIR, name), 0);
	close(fd);

	name[255] = 'n';
	name[256] = '\0';
	fd = make_file("short", MAIL);
	errno = 0;
	cr_assert_eq(store_at(ms, fd, NEWDIR, name), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &stub), 0);
	close(fd);
	cr_assert_eq(count_objects(), 1);
}

/* S3 percent-encodes non-ASCII bytes: a name fits only if its encoded form
   does, checked the same way on every backend */
Test(fs_mailstore, encoded_names_refused)
{
	char name[300];
	struct stat st;
	struct stub stub;
	int fd;

	setup_store(NULL);
	name[0] = '\0';
	for (unsigned int i = 0; i < 42; i++)
		strcat(name, "\xc3\xa9");	/* 84 bytes, 252 encoded */
	fd = make_file(name, MAIL);
	cr_assert_eq(store_at(ms, fd, NEWDIR, name), 0);
	close(fd);
	cr_assert_eq(count_objects(), 1);

	strcat(name, "\xc3\xa9");	/* 86 bytes, 258 encoded */
	fd = make_file("short", MAIL);
	errno = 0;
	cr_assert_eq(store_at(ms, fd, NEWDIR, name), -1);
	cr_assert_eq(errno, ENAMETOOLONG);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, (off_t)strlen(MAIL));
	cr_assert_eq(stub_read(fd, &st, &stub), 0);
	close(fd);
	cr_assert_eq(count_objects(), 1);
	cr_assert(objstore_meta_value_fits("plain name"));
	cr_assert(!objstore_meta_value_fits(name));
}

Test(fs_mailstore, not_a_mail_location)
{
	int fd;

	setup_store(NULL);
	fd = make_file("m", MAIL);
	errno = 0;
	cr_assert_eq(store_at(ms, fd, "user@example.com/Maildir/tmp",
				     "m"), -1);
	cr_assert_eq(errno, EINVAL);
	close(fd);
	cr_assert_eq(count_objects(), 0);
}

Test(fs_mailstore, relocate_only_to_another_folder_or_user)
{
	struct objstore_stat ost;
	struct stub stub, moved;
	void *data;
	size_t size;
	int fd;

	setup_store(NULL);
	fd = make_file("m", MAIL);
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), 0);
	read_stub(fd, &stub);
	close(fd);

	/* same folder (flag change, new/ -> cur/): keeps its object */
	cr_assert_eq(mkdirat(meta_fd, FOLDER "/cur", 0700), 0);
	cr_assert_eq(relocate_to(ms, &stub, FOLDER "/cur", "m:2,S",
					&moved), 0);
	cr_assert_eq(count_objects(), 1);

	/* another folder: stored again there, with its metadata */
	cr_assert_eq(mkdirat(meta_fd, "user@example.com/Maildir/cur", 0700), 0);
	cr_assert_eq(relocate_to(ms, &stub,
					"user@example.com/Maildir/cur", "m2:2,",
					&moved), 1, "%s", strerror(errno));
	cr_assert_str_neq(moved.key, stub.key);
	cr_assert_eq(moved.size, stub.size);
	cr_assert_eq(objstore_head(store, moved.key, &ost), 0);
	cr_assert_str_eq(objstore_stat_meta(&ost, "path"), "Maildir/cur");
	cr_assert_str_eq(objstore_stat_meta(&ost, "name"), "m2:2,");
	objstore_stat_free(&ost);
	cr_assert_eq(objstore_get(store, moved.key, 0, OBJSTORE_TO_END, 1 << 20,
				  &data, &size), 0);
	cr_assert_eq(size, strlen(MAIL));
	cr_assert_eq(memcmp(data, MAIL, size), 0);
	free(data);
	cr_assert_eq(count_objects(), 2, "the old object is the caller's");

	/* another user: under that user's prefix */
	cr_assert_eq(mkdirat(meta_fd, "other@example.com", 0700), 0);
	cr_assert_eq(mkdirat(meta_fd, "other@example.com/new", 0700), 0);
	cr_assert_eq(relocate_to(ms, &stub, "other@example.com/new",
					"m", &moved), 1);
	cr_assert_not_null(strstr(moved.key, "/other@example.com/mailboxes/"));
	cr_assert_eq(count_objects(), 3);
}

Test(fs_mailstore, relocate_store_failure)
{
	struct stub stub, moved;
	int fd;

	/* the first PUT succeeds, the relocation's fails */
	setup_store("ops=put;error=permanent;fail_after=1");
	fd = make_file("m", MAIL);
	cr_assert_eq(store_at(ms, fd, NEWDIR, "m"), 0);
	read_stub(fd, &stub);
	close(fd);
	cr_assert_eq(mkdirat(meta_fd, "user@example.com/Maildir/cur", 0700), 0);
	errno = 0;
	cr_assert_eq(relocate_to(ms, &stub,
					"user@example.com/Maildir/cur", "m",
					&moved), -1);
	cr_assert_eq(errno, EIO);
	cr_assert_eq(count_objects(), 1);
}
