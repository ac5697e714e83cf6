/* test_fs_userload_hostile.c: what userload_load() does with bad input from
 * the store: corrupt or misnamed bundles (treated as absent, logged with
 * their key, mails still come back), a bad newest diff (the older one is
 * used), stubs pointing at another user's objects (dropped), mails with bad
 * metadata (skipped, nothing created outside the user dir), duplicate folder
 * GUIDs, junk keys; an empty store; store failures (-1, EIO). */
#include "test_fs_userload.h"

#include <criterion/parameterized.h>

TestSuite(fs_userload_hostile, .init = ul_init, .fini = ul_fini);

#define T0 1600000000

/* user root (Maildir = INBOX) and INBOX's bundle with one stub; the mail
   also carries metadata, so it can come back without the bundle.  Returns
   INBOX's bundle (malloc()ed) and its key. */
static unsigned char *make_inbox(size_t *size_r, char *key_r, size_t key_size)
{
	struct bundle_info info = { .secs = 0x60000000, .usecs = 1 };
	struct bundle_tree *tree;
	struct bundle_name name;
	unsigned char *data;
	const char *error;

	ul_mkdir(ul_src_fd, "Maildir", GUID_INBOX);
	ul_mkdir(ul_src_fd, "Maildir/cur", NULL);
	ul_file(ul_src_fd, "Maildir/dovecot.index", "index", T0);
	ul_stub(ul_src_fd, "Maildir/cur/1.M1:2,S", GUID_INBOX, OID(1), "m1",
		T0);
	ul_put_mail(GUID_INBOX, OID(1), "m1", "Maildir/cur", "1.M1:2,S",
		    "1500000001");
	ul_bundle_root("", NULL);
	tree = ul_scan_root("Maildir");
	cr_assert_eq(bundle_id_generate(info.id), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, &data, size_r, &error),
		     0, "%s", error);
	bundle_name_from_info(&tree->base_info, &name);
	bundle_tree_free(&tree);
	{
		char prefix[1024];

		ul_root_prefix(prefix, sizeof(prefix), GUID_INBOX);
		cr_assert_eq(bundle_key_build(prefix, &name, key_r, key_size,
					      &error), 0);
	}
	return data;
}

enum corruption {
	CORRUPT_BYTE,
	CORRUPT_TRUNCATED,
	CORRUPT_EMPTY,
	CORRUPT_OTHER_NAME,
};

struct corrupt_case {
	enum corruption how;
	char log[64];	/* (params are copied: no pointers) */
};

ParameterizedTestParameters(fs_userload_hostile, corrupt_folder_bundle)
{
	static struct corrupt_case cases[] = {
		{ CORRUPT_BYTE, "checksum" },
		{ CORRUPT_TRUNCATED, "corrupt bundle" },
		{ CORRUPT_EMPTY, "corrupt bundle" },
		{ CORRUPT_OTHER_NAME, "its header is of bundle" },
	};
	return cr_make_param_array(struct corrupt_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct corrupt_case *c, fs_userload_hostile,
		  corrupt_folder_bundle)
{
	char key[OBJSTORE_KEY_MAX + 1];
	struct userload_stats stats;
	unsigned char *data;
	size_t size;

	data = make_inbox(&size, key, sizeof(key));
	switch (c->how) {
	case CORRUPT_BYTE:
		data[size / 2] ^= 0x40;
		break;
	case CORRUPT_TRUNCATED:
		size -= 40;
		break;
	case CORRUPT_EMPTY:
		size = 0;
		break;
	case CORRUPT_OTHER_NAME:
		/* a valid bundle stored under another name */
		memcpy(strrchr(key, '.') + 1, "ffff", 4);
		break;
	}
	cr_assert_eq(objstore_put(ul_store, key, data, size, NULL, 0), 0);
	free(data);

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_log(key);
	ul_assert_log(c->log);
	cr_assert_eq(stats.bundles_rejected, 1);
	cr_assert_eq(stats.roots_loaded, 1);
	/* the folder's index is gone, its mail is back */
	cr_assert(!ul_exists("Maildir/dovecot.index"));
	ul_assert_guid("Maildir", GUID_INBOX);
	ul_assert_stub("Maildir/cur/1.M1:2,S", GUID_INBOX, OID(1), 2,
		       1500000001);
	cr_assert_eq(stats.mails_put_back, 1);
}

Test(fs_userload_hostile, bad_newest_diff_falls_back)
{
	struct bundle_tree *base, *v1, *v2, *got;
	struct userload_stats stats;
	char base_key[OBJSTORE_KEY_MAX + 1], key[OBJSTORE_KEY_MAX + 1];
	struct objtest_list list = { 0 };
	const char *error, *why;
	void *data;
	size_t size;

	ul_file(ul_src_fd, "a", "v0", T0);
	base = ul_scan_root("");
	ul_put_base(base, NULL, 0x60000000, base_key, sizeof(base_key));
	ul_file(ul_src_fd, "a", "v0 v1", T0);
	v1 = ul_scan_root("");
	ul_put_diff(base, v1, NULL, 1, 0x60000001);
	ul_file(ul_src_fd, "a", "v0 v1 v2", T0);
	v2 = ul_scan_root("");
	ul_put_diff(base, v2, NULL, 2, 0x60000002);
	/* corrupt diff 2: find it (the diff that is not diff 1) by content */
	cr_assert_eq(objtest_list(ul_store, "", NULL, &list), 0);
	for (size_t i = 0; i < list.count; i++) {
		struct bundle *b;

		if (strncmp(list.keys[i], base_key, strlen(base_key)) != 0 ||
		    strcmp(list.keys[i], base_key) == 0)
			continue;
		cr_assert_eq(objstore_get(ul_store, list.keys[i], 0,
					  OBJSTORE_TO_END, 1 << 20, &data,
					  &size), 0);
		cr_assert_eq(bundle_decode(data, size, 1 << 20, &b, &error),
			     0);
		if (b->info.seq == 2) {
			snprintf(key, sizeof(key), "%s", list.keys[i]);
			((unsigned char *)data)[size - 1] ^= 1;
			cr_assert_eq(objstore_put(ul_store, key, data, size,
						  NULL, 0), 0);
		}
		bundle_free(&b);
		free(data);
	}
	objtest_list_free(&list);

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_log(key);
	cr_assert_eq(bundle_tree_scan(ul_dst_fd, &got, &error), 0, "%s",
		     error);
	cr_assert(bundle_tree_equal(v1, got, &why), "not v1: %s", why);
	cr_assert_eq(stats.bundles_rejected, 1);
	bundle_tree_free(&base);
	bundle_tree_free(&v1);
	bundle_tree_free(&v2);
	bundle_tree_free(&got);
}

Test(fs_userload_hostile, stub_of_another_user_dropped)
{
	struct userload_stats stats;
	char h1[3], h2[4], key[OBJSTORE_KEY_MAX + 1];
	struct stub stub;
	int fd;

	ul_mkdir(ul_src_fd, "Maildir", NULL);
	ul_mkdir(ul_src_fd, "Maildir/cur", NULL);
	ul_stub(ul_src_fd, "Maildir/cur/mine:2,", GUID_INBOX, OID(1), "m1",
		T0);
	/* another user's object, and a key of this user that is no mail */
	ids_user_hash("other@example.com", h1, h2);
	snprintf(stub.key, sizeof(stub.key),
		 "%s/%s/other@example.com/mailboxes/%s/%s", h1, h2, GUID_INBOX,
		 OID(2));
	stub.size = 10;
	fd = openat(ul_src_fd, "Maildir/cur/theirs:2,", O_WRONLY | O_CREAT,
		    0600);
	cr_assert_eq(stub_write(fd, &stub), 0);
	close(fd);
	snprintf(key, sizeof(key), "%s/x/%s", ul_prefix, OID(3));
	snprintf(stub.key, sizeof(stub.key), "%s", key);
	fd = openat(ul_src_fd, "Maildir/cur/odd:2,", O_WRONLY | O_CREAT, 0600);
	cr_assert_eq(stub_write(fd, &stub), 0);
	close(fd);
	ul_bundle_root("", NULL);

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_stub("Maildir/cur/mine:2,", GUID_INBOX, OID(1), 2, T0);
	cr_assert(!ul_exists("Maildir/cur/theirs:2,"));
	cr_assert(!ul_exists("Maildir/cur/odd:2,"));
	ul_assert_log("dropping stub Maildir/cur/theirs:2,");
	ul_assert_log("dropping stub Maildir/cur/odd:2,");
	cr_assert_eq(stats.roots_loaded, 1);
}

struct meta_case {
	char path[64], name[64];	/* "-": no such metadata */
};

ParameterizedTestParameters(fs_userload_hostile, bad_metadata_skipped)
{
	static struct meta_case cases[] = {
		{ "Maildir/../../cur", "x" },
		{ "../cur", "x" },
		{ "/tmp/cur", "x" },
		{ "Maildir//cur", "x" },
		{ "Maildir/cur/", "x" },
		{ "Maildir/tmpx", "x" },
		{ "Maildir/tmp", ".." },
		{ "Maildir", "x" },
		{ "Maildir/cur", "a/b" },
		{ "Maildir/cur", ".." },
		{ "Maildir/cur", "." },
		{ "Maildir/cur", "" },
		{ "Maildir/dbox-Mails", "x.1" },
		{ "Maildir/dbox-Mails", "u.1a" },
		{ "-", "x" },
		{ "Maildir/cur", "-" },
		/* a path through a file */
		{ "subscriptions/cur", "x" },
	};
	return cr_make_param_array(struct meta_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct meta_case *c, fs_userload_hostile,
		  bad_metadata_skipped)
{
	char key[OBJSTORE_KEY_MAX + 1], path[8192];
	struct userload_stats stats;
	struct stat st;

	ul_file(ul_src_fd, "subscriptions", "INBOX\n", T0);
	ul_bundle_root("", NULL);
	ul_put_mail(GUID_INBOX, OID(1), "bad",
		    strcmp(c->path, "-") == 0 ? NULL : c->path,
		    strcmp(c->name, "-") == 0 ? NULL : c->name, NULL);
	ul_put_mail(GUID_INBOX, OID(2), "good", "Maildir/cur", "2.M2:2,",
		    "1500000002");

	cr_assert_eq(ul_load(&stats), 1);
	ul_mail_key(key, sizeof(key), GUID_INBOX, OID(1));
	ul_assert_log(key);
	cr_assert_eq(stats.mails_skipped, 1);
	cr_assert_eq(stats.mails_put_back, 1);
	ul_assert_stub("Maildir/cur/2.M2:2,", GUID_INBOX, OID(2), 4,
		       1500000002);
	/* nothing outside the user dir */
	snprintf(path, sizeof(path), "%s/cur", ul_tmp);
	cr_assert_neq(stat(path, &st), 0);
	cr_assert_neq(stat("/tmp/cur/x", &st), 0);
}

/* a mail stored at its fsync in tmp/ (store_on_fsync) is no bad metadata:
   it comes back in new/ under its tmp/ name (putback.h) */
Test(fs_userload_hostile, tmp_metadata_goes_to_new)
{
	struct userload_stats stats;

	ul_file(ul_src_fd, "subscriptions", "INBOX\n", T0);
	ul_bundle_root("", NULL);
	ul_put_mail(GUID_INBOX, OID(1), "mail", "Maildir/tmp", "1.M1P1.h",
		    "1500000001");
	cr_assert_eq(ul_load(&stats), 1);
	cr_assert_eq(stats.mails_skipped, 0);
	cr_assert_eq(stats.mails_put_back, 1);
	ul_assert_stub("Maildir/new/1.M1P1.h", GUID_INBOX, OID(1), 4,
		       1500000001);
	cr_assert(!ul_exists("Maildir/tmp/1.M1P1.h"));
}

Test(fs_userload_hostile, duplicate_folder_guid)
{
	struct userload_stats stats;
	char value[64];
	int fd;

	ul_mkdir(ul_src_fd, "a", GUID_INBOX);
	ul_mkdir(ul_src_fd, "b", GUID_INBOX);
	ul_bundle_root("", NULL);
	ul_file(ul_src_fd, "a/dovecot.index", "idx", T0);
	cr_assert_eq(unlinkat(ul_src_fd, "b", AT_REMOVEDIR), 0);
	ul_bundle_root("a", GUID_INBOX);

	cr_assert_eq(ul_load(&stats), 1);
	cr_assert(ul_exists("a/dovecot.index"));
	ul_assert_guid("a", GUID_INBOX);
	cr_assert(ul_exists("b"));
	cr_assert(!ul_exists("b/dovecot.index"));
	fd = openat(ul_dst_fd, "b", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	cr_assert_lt(fgetxattr(fd, BUNDLE_XATTR_GUID, value, sizeof(value)),
		     0);
	close(fd);
	ul_assert_log("folder " GUID_INBOX " is both a and b");
}

Test(fs_userload_hostile, junk_keys_only)
{
	char key[OBJSTORE_KEY_MAX + 1];
	const char *junk[] = {
		"idx/notabundle", "idx/bundle.zz", "foo", "mailboxes/x/y",
		"mailboxes/" GUID_INBOX "/nothex", "mailboxes/" GUID_INBOX
		"/idx/sub/bundle", "mailboxes/ABCDEF00000000000000000000000000/"
		"00000000000000000000000000000001",
	};
	struct userload_stats stats;
	struct bundle_tree *tree;
	const char *error;

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		snprintf(key, sizeof(key), "%s/%s", ul_prefix, junk[i]);
		cr_assert_eq(objstore_put(ul_store, key, "j", 1, NULL, 0), 0,
			     "%s", key);
	}
	cr_assert_eq(ul_load(&stats), 0);
	cr_assert_eq(bundle_tree_scan(ul_dst_fd, &tree, &error), 0);
	cr_assert_eq(tree->count, 0);
	bundle_tree_free(&tree);
	ul_assert_log("invalid bundle name");
}

Test(fs_userload_hostile, empty_store)
{
	struct userload_roots *roots = NULL;
	struct bundle_tree *tree;
	uint64_t req[OBJSTORE_OP_COUNT];
	const char *error;

	/* another user's objects are not this user's */
	ul_put_mail(GUID_INBOX, OID(1), "m", "Maildir/cur", "1", NULL);
	cr_assert_eq(userload_load(ul_store, "other@example.com", ul_dst_fd,
				   NULL, &roots, &error), 0);
	cr_assert_not_null(roots);
	cr_assert_eq(roots->count, 1);
	cr_assert_str_eq(roots->roots[0].path, "");
	cr_assert_eq(roots->roots[0].bundle_key_count, 0);
	userload_roots_free(&roots);
	ul_request_counts(req);
	cr_assert_eq(req[OBJSTORE_OP_LIST], 1);
	cr_assert_eq(req[OBJSTORE_OP_HEAD] + req[OBJSTORE_OP_GET], 0);
	cr_assert_eq(bundle_tree_scan(ul_dst_fd, &tree, &error), 0);
	cr_assert_eq(tree->count, 0, "user dir not left empty");
	bundle_tree_free(&tree);
}

Test(fs_userload_hostile, invalid_user)
{
	const char *error;

	cr_assert_eq(userload_load(ul_store, "../x", ul_dst_fd, NULL, NULL,
				   &error), -1);
	cr_assert_eq(errno, EINVAL);
}

struct fault_case {
	char fault[64];
	int ret;
	unsigned int rejected, skipped, put_back;
};

ParameterizedTestParameters(fs_userload_hostile, store_errors)
{
	static struct fault_case cases[] = {
		{ "ops=list;error=transient;rate=1", -1, 0, 0, 0 },
		{ "ops=get;error=auth;rate=1", -1, 0, 0, 0 },
		{ "ops=get;error=permanent;fail_after=1", -1, 0, 0, 0 },
		{ "ops=head;error=throttled;rate=1", -1, 0, 0, 0 },
		/* gone since the listing: not a store failure; without
		   bundles both mails come back from their metadata */
		{ "ops=get;error=notfound;rate=1", 1, 2, 0, 2 },
		{ "ops=head;error=notfound;rate=1", 1, 0, 1, 0 },
	};
	return cr_make_param_array(struct fault_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct fault_case *c, fs_userload_hostile, store_errors)
{
	struct userload_roots *roots = NULL;
	struct userload_stats stats;
	const char *error = NULL;
	char key[OBJSTORE_KEY_MAX + 1];
	unsigned char *data;
	size_t size;

	data = make_inbox(&size, key, sizeof(key));
	cr_assert_eq(objstore_put(ul_store, key, data, size, NULL, 0), 0);
	free(data);
	ul_put_mail(GUID_INBOX, OID(2), "m22", "Maildir/new", "2.M2", NULL);
	ul_setup_store(c->fault);
	errno = 0;
	cr_assert_eq(userload_load(ul_store, UL_USER, ul_dst_fd, &stats,
				   &roots, &error), c->ret, "%s",
		     error == NULL ? "" : error);
	if (c->ret < 0) {
		cr_assert_eq(errno, EIO);
		cr_assert_not_null(error);
		cr_assert_null(roots);
		ul_assert_log(error);
		return;
	}
	cr_assert_eq(stats.bundles_rejected, c->rejected);
	cr_assert_eq(stats.mails_skipped, c->skipped);
	cr_assert_eq(stats.mails_put_back, c->put_back);
	if (c->put_back > 0) {
		ul_assert_stub("Maildir/cur/1.M1:2,S", GUID_INBOX, OID(1), 2,
			       1500000001);
		ul_assert_guid("Maildir", GUID_INBOX);
	}
	userload_roots_free(&roots);
}

Test(fs_userload_hostile, unwritable_folder_tree_ignored)
{
	struct bundle_entry e = { .mode = 0700, .mtime_sec = T0 };
	struct userload_stats stats;
	struct bundle_tree *tree;
	char path[BUNDLE_PATH_MAX + 1] = "";
	const char *error;

	ul_mkdir(ul_src_fd, "Maildir", GUID_INBOX);
	ul_bundle_root("", NULL);
	/* a folder tree with a valid 4096-byte path no filesystem takes
	   (PATH_MAX counts the NUL): 15 x 255 + 200 + 55 bytes + slashes */
	tree = bundle_tree_new();
	e.type = BUNDLE_ENTRY_DIR;
	for (int i = 0; i < 16; i++) {
		size_t len = strlen(path), seg = i < 15 ? 255 : 200;

		if (i > 0)
			path[len++] = '/';
		memset(path + len, 'a', seg);
		path[len + seg] = '\0';
		e.path = path;
		cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	}
	strcat(path, "/");
	memset(path + strlen(path), 'f', 55);
	path[BUNDLE_PATH_MAX] = '\0';
	cr_assert_eq(strlen(path), BUNDLE_PATH_MAX);
	e.type = BUNDLE_ENTRY_FILE;
	e.path = path;
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	e.path = "dovecot.index";
	cr_assert_eq(bundle_tree_add(tree, &e, &error), 0, "%s", error);
	ul_put_base(tree, GUID_INBOX, 0x60000000, NULL, 0);
	bundle_tree_free(&tree);
	ul_put_mail(GUID_INBOX, OID(1), "m1", "Maildir/cur", "1.M1:2,",
		    "1500000001");

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_log("cannot be written");
	cr_assert_eq(stats.bundles_rejected, 1);
	cr_assert(!ul_exists("Maildir/dovecot.index"));
	memset(path, 'a', 255);
	path[255] = '\0';
	{
		char p2[300];

		snprintf(p2, sizeof(p2), "Maildir/%.255s", path);
		cr_assert(!ul_exists(p2), "partial tree left behind");
	}
	ul_assert_stub("Maildir/cur/1.M1:2,", GUID_INBOX, OID(1), 2,
		       1500000001);
}

Test(fs_userload_hostile, diff_of_another_base_not_applied)
{
	struct bundle_tree *base, *other, *v1, *got;
	struct userload_stats stats;
	struct bundle_info info;
	const char *error, *why;
	unsigned char *data;
	size_t size;

	ul_file(ul_src_fd, "a", "v0", T0);
	base = ul_scan_root("");
	ul_put_base(base, NULL, 0x60000000, NULL, 0);
	/* another tree encoded with the same name (another digest) and a
	   diff against it: named like a diff of the stored base */
	ul_file(ul_src_fd, "a", "vX", T0);
	other = ul_scan_root("");
	memset(&info, 0, sizeof(info));
	info.secs = base->base_info.secs;
	info.usecs = base->base_info.usecs;
	memcpy(info.id, base->base_info.id, BUNDLE_ID_SIZE);
	cr_assert_eq(bundle_encode_base(other, &info, &data, &size, &error),
		     0, "%s", error);
	free(data);
	ul_file(ul_src_fd, "a", "v1", T0);
	v1 = ul_scan_root("");
	ul_put_diff(other, v1, NULL, 1, 0x60000001);

	cr_assert_eq(ul_load(&stats), 1);
	ul_assert_log("does not apply");
	cr_assert_eq(stats.bundles_rejected, 1);
	cr_assert_eq(bundle_tree_scan(ul_dst_fd, &got, &error), 0, "%s",
		     error);
	cr_assert(bundle_tree_equal(base, got, &why), "not the base: %s", why);
	bundle_tree_free(&base);
	bundle_tree_free(&other);
	bundle_tree_free(&v1);
	bundle_tree_free(&got);
}
