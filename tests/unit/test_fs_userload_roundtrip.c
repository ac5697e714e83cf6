/* test_fs_userload_roundtrip.c: a user tree (user root, Maildir INBOX
 * folder, nested .Sent folder) stored as bundles comes back unchanged
 * (files, stubs, guids, modes, owners, mtimes) with one LIST and one GET per
 * bundle, no HEAD; a base with two diffs loads as the newest diff; the roots
 * and bundle keys are reported for the uploader. */
#include "test_fs_userload.h"

TestSuite(fs_userload_roundtrip, .init = ul_init, .fini = ul_fini);

#define T0 1600000000

static void make_src_tree(void)
{
	ul_file(ul_src_fd, "subscriptions", "INBOX\nSent\n", T0);
	ul_mkdir(ul_src_fd, "sieve", NULL);
	ul_file(ul_src_fd, "sieve/main.sieve", "keep;\n", T0 + 1);
	ul_mkdir(ul_src_fd, "Maildir", GUID_INBOX);
	ul_mkdir(ul_src_fd, "Maildir/cur", NULL);
	ul_mkdir(ul_src_fd, "Maildir/new", NULL);
	ul_mkdir(ul_src_fd, "Maildir/tmp", NULL);
	ul_file(ul_src_fd, "Maildir/tmp/1.M1P1.host", "being written", T0);
	ul_file(ul_src_fd, "Maildir/dovecot-uidlist", "3 V1 N3\n", T0 + 2);
	ul_file(ul_src_fd, "Maildir/dovecot-uidlist.lock", "", T0);
	ul_file(ul_src_fd, "Maildir/dovecot.index.log", "log bytes", T0 + 3);
	ul_stub(ul_src_fd, "Maildir/cur/1.M1P1.host,S=5:2,S", GUID_INBOX,
		OID(1), "mail1", T0 + 4);
	ul_stub(ul_src_fd, "Maildir/new/2.M2P1.host,S=6", GUID_INBOX,
		OID(2), "mail22", T0 + 5);
	ul_mkdir(ul_src_fd, "Maildir/.Sent", GUID_SENT);
	ul_mkdir(ul_src_fd, "Maildir/.Sent/cur", NULL);
	ul_mkdir(ul_src_fd, "Maildir/.Sent/new", NULL);
	ul_mkdir(ul_src_fd, "Maildir/.Sent/tmp", NULL);
	ul_file(ul_src_fd, "Maildir/.Sent/dovecot.index", "index", T0 + 6);
	ul_stub(ul_src_fd, "Maildir/.Sent/cur/3.M3P1.host,S=7:2,S", GUID_SENT,
		OID(3), "mail333", T0 + 7);
	cr_assert_eq(fchmodat(ul_src_fd, "Maildir/.Sent", 0750, 0), 0);
	cr_assert_eq(fchownat(ul_src_fd, "subscriptions", 1234, 1235, 0), 0);
	cr_assert_eq(fchownat(ul_src_fd, "Maildir", 1234, 1235, 0), 0);
	/* directory mtimes last: creating entries changed them */
	const char *dirs[] = { "Maildir/.Sent/cur", "Maildir/.Sent",
			       "Maildir/cur", "Maildir", "sieve" };
	for (size_t i = 0; i < 5; i++) {
		struct timespec ts[2] = { { 0, UTIME_OMIT },
					  { T0 + 10 + (time_t)i, 7 } };

		cr_assert_eq(utimensat(ul_src_fd, dirs[i], ts, 0), 0);
	}
}

/* the source tree as userload must rebuild it: no lock files, nothing in
   tmp directories */
static enum bundle_scan_action expect_filter(const char *path, bool is_dir,
					     void *context)
{
	const char *last = strrchr(path, '/');
	size_t len = strlen(path);

	(void)context;
	last = last == NULL ? path : last + 1;
	if (!is_dir)
		return len > 5 && strcmp(path + len - 5, ".lock") == 0 ?
			BUNDLE_SCAN_SKIP : BUNDLE_SCAN_INCLUDE;
	return strcmp(last, "tmp") == 0 ? BUNDLE_SCAN_NO_CHILDREN :
		BUNDLE_SCAN_INCLUDE;
}

Test(fs_userload_roundtrip, user_root_and_two_folders)
{
	struct bundle_tree *expected, *got;
	struct userload_stats stats;
	uint64_t req[OBJSTORE_OP_COUNT];
	const char *error, *why;
	struct stat st;

	make_src_tree();
	ul_bundle_root("", NULL);
	ul_bundle_root("Maildir", GUID_INBOX);
	ul_bundle_root("Maildir/.Sent", GUID_SENT);
	ul_setup_store(NULL); /* fresh request counters */

	cr_assert_eq(ul_load(&stats), 1);
	cr_assert_eq(bundle_tree_scan_filtered(ul_src_fd, expect_filter, NULL,
					       &expected, &error), 0, "%s",
		     error);
	cr_assert_eq(bundle_tree_scan(ul_dst_fd, &got, &error), 0, "%s",
		     error);
	cr_assert(bundle_tree_equal(expected, got, &why), "differ: %s", why);
	bundle_tree_free(&expected);
	bundle_tree_free(&got);

	ul_assert_guid("Maildir", GUID_INBOX);
	ul_assert_guid("Maildir/.Sent", GUID_SENT);
	ul_assert_stub("Maildir/.Sent/cur/3.M3P1.host,S=7:2,S", GUID_SENT,
		       OID(3), 7, T0 + 7);
	cr_assert(!ul_exists("Maildir/tmp/1.M1P1.host"));
	cr_assert(!ul_exists("Maildir/dovecot-uidlist.lock"));
	/* the user dir: the most common top-level owner, 0700 */
	cr_assert_eq(fstat(ul_dst_fd, &st), 0);
	cr_assert_eq(st.st_uid, 1234);
	cr_assert_eq(st.st_gid, 1235);
	cr_assert_eq(st.st_mode & 07777, 0700);

	cr_assert_eq(stats.roots_loaded, 3);
	cr_assert_eq(stats.bundles_fetched, 3);
	cr_assert_eq(stats.bundles_rejected, 0);
	cr_assert_eq(stats.mails_put_back, 0);
	cr_assert_eq(stats.folders_found, 2);
	ul_request_counts(req);
	cr_assert_eq(req[OBJSTORE_OP_LIST], 1);
	cr_assert_eq(req[OBJSTORE_OP_GET], 3);
	cr_assert_eq(req[OBJSTORE_OP_HEAD], 0);
	cr_assert_eq(req[OBJSTORE_OP_PUT] + req[OBJSTORE_OP_DELETE] +
		     req[OBJSTORE_OP_COPY], 0);
}

Test(fs_userload_roundtrip, newest_of_two_diffs_applied)
{
	struct bundle_tree *base, *v1, *v2, *got, *expected;
	struct userload_stats stats;
	uint64_t req[OBJSTORE_OP_COUNT];
	const char *error, *why;

	ul_mkdir(ul_src_fd, "Maildir", NULL);
	ul_file(ul_src_fd, "Maildir/dovecot.index.log", "v0", T0);
	ul_file(ul_src_fd, "Maildir/subscriptions", "INBOX\n", T0);
	base = ul_scan_root("");
	ul_put_base(base, NULL, 0x60000000, NULL, 0);

	ul_file(ul_src_fd, "Maildir/dovecot.index.log", "v0 v1", T0 + 1);
	ul_file(ul_src_fd, "Maildir/new-in-v1", "x", T0 + 1);
	v1 = ul_scan_root("");
	ul_put_diff(base, v1, NULL, 1, 0x60000010);

	ul_file(ul_src_fd, "Maildir/dovecot.index.log", "v0 v1 v2", T0 + 2);
	cr_assert_eq(unlinkat(ul_src_fd, "Maildir/subscriptions", 0), 0);
	v2 = ul_scan_root("");
	/* stored with an older time than diff 1: seq decides */
	ul_put_diff(base, v2, NULL, 2, 0x60000005);
	ul_setup_store(NULL);

	cr_assert_eq(ul_load(&stats), 1);
	cr_assert_eq(bundle_tree_scan(ul_dst_fd, &got, &error), 0, "%s",
		     error);
	expected = ul_scan_root("");
	cr_assert(bundle_tree_equal(expected, got, &why), "differ: %s", why);
	cr_assert_eq(stats.bundles_fetched, 3);
	cr_assert_eq(stats.roots_loaded, 1);
	ul_request_counts(req);
	cr_assert_eq(req[OBJSTORE_OP_LIST], 1);
	cr_assert_eq(req[OBJSTORE_OP_GET], 3);
	bundle_tree_free(&base);
	bundle_tree_free(&v1);
	bundle_tree_free(&v2);
	bundle_tree_free(&got);
	bundle_tree_free(&expected);
}

Test(fs_userload_roundtrip, roots_report_bundle_keys)
{
	struct userload_roots *roots = NULL;
	struct bundle_tree *tree;
	char old_key[OBJSTORE_KEY_MAX + 1], new_key[OBJSTORE_KEY_MAX + 1];
	char folder_key[OBJSTORE_KEY_MAX + 1];
	const char *error;
	bool seen_user = false, seen_inbox = false, seen_gone = false;

	ul_mkdir(ul_src_fd, "Maildir", GUID_INBOX);
	ul_file(ul_src_fd, "Maildir/dovecot.index", "i", T0);
	tree = ul_scan_root("");
	ul_put_base(tree, NULL, 0x60000000, old_key, sizeof(old_key));
	bundle_tree_free(&tree);
	tree = ul_scan_root("");
	ul_put_base(tree, NULL, 0x60000001, new_key, sizeof(new_key));
	bundle_tree_free(&tree);
	tree = ul_scan_root("Maildir");
	ul_put_base(tree, GUID_INBOX, 0x60000000, folder_key,
		    sizeof(folder_key));
	bundle_tree_free(&tree);
	/* a folder with mails only: no bundle, placed by the rescan */
	ul_put_mail(GUID_GONE, OID(9), "m", "Maildir/.Gone/cur", "9.M9:2,",
		    NULL);

	cr_assert_eq(userload_load(ul_store, UL_USER, ul_dst_fd, NULL, &roots,
				   &error), 1, "%s", error);
	cr_assert_not_null(roots);
	for (size_t i = 0; i < roots->count; i++) {
		const struct userload_root *r = &roots->roots[i];

		if (r->guid[0] == '\0') {
			cr_assert_eq(i, 0);
			cr_assert_str_eq(r->path, "");
			cr_assert(r->tree_loaded);
			cr_assert_eq(r->bundle_key_count, 2);
			cr_assert_str_eq(r->bundle_keys[0], old_key);
			cr_assert_str_eq(r->bundle_keys[1], new_key);
			seen_user = true;
		} else if (strcmp(r->guid, GUID_INBOX) == 0) {
			cr_assert_str_eq(r->path, "Maildir");
			cr_assert(r->tree_loaded);
			cr_assert_eq(r->bundle_key_count, 1);
			cr_assert_str_eq(r->bundle_keys[0], folder_key);
			seen_inbox = true;
		} else if (strcmp(r->guid, GUID_GONE) == 0) {
			cr_assert_str_eq(r->path, "Maildir/.Gone");
			cr_assert(!r->tree_loaded);
			cr_assert_eq(r->bundle_key_count, 0);
			seen_gone = true;
		}
	}
	cr_assert(seen_user && seen_inbox && seen_gone);
	cr_assert_eq(roots->count, 3);
	userload_roots_free(&roots);
	cr_assert_null(roots);
}
