/* test_fs_upload_bundles.c: upload_user() stores a user's tree as one base
 * bundle per root (user root, each folder) with the transient files left
 * out, then diffs on that base, nothing for an unchanged tree, a new base
 * when the diff grows too big, and after a restart a new base per root with
 * the old bundles deleted. */
#include "test_fs_upload.h"

#include <criterion/parameterized.h>

TestSuite(fs_upload_bundles, .init = up_init, .fini = up_fini);

static const struct bundle_entry *
find_entry(const struct bundle_tree *tree, const char *path,
	   enum bundle_entry_type type)
{
	const struct bundle_entry *e = bundle_tree_find(tree, path);

	cr_assert_not_null(e, "%s missing from the bundle", path);
	cr_assert_eq(e->type, type, "%s: type %d", path, e->type);
	return e;
}

/* no entry below path/ */
static void assert_no_children(const struct bundle_tree *tree,
			       const char *path)
{
	size_t len = strlen(path);

	for (size_t i = 0; i < tree->count; i++) {
		const char *p = tree->entries[i].path;

		cr_assert(strncmp(p, path, len) != 0 || p[len] != '/',
			  "%s is in the bundle", p);
	}
}

static void full_upload(void)
{
	up_changed();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
}

Test(fs_upload_bundles, first_upload_stores_one_base_per_root)
{
	struct up_bundles user_b, inbox_b, sent_b;
	const struct bundle_entry *e;
	struct bundle *b;
	char key[OBJSTORE_KEY_MAX + 1];

	up_make_tree();
	full_upload();
	up_assert_bundles(NULL, 0, &user_b);
	up_assert_bundles(GUID_INBOX, 0, &inbox_b);
	up_assert_bundles(GUID_SENT, 0, &sent_b);
	struct upload_stats stats = up_stats();

	cr_assert_eq(stats.bases, 3);
	cr_assert_eq(stats.diffs, 0);
	cr_assert_eq(stats.passes, 1);
	cr_assert_eq(stats.failures, 0);
	cr_assert_gt(stats.bytes, 0);

	/* the user root: its own files, folders as bare directories */
	b = up_get_bundle(user_b.base);
	cr_assert_eq(b->info.kind, BUNDLE_KIND_BASE);
	cr_assert_eq(b->tree->count, 2);
	e = find_entry(b->tree, "Maildir", BUNDLE_ENTRY_DIR);
	cr_assert_str_eq(e->guid, GUID_INBOX);
	assert_no_children(b->tree, "Maildir");
	e = find_entry(b->tree, "dovecot.sieve", BUNDLE_ENTRY_FILE);
	cr_assert_eq(e->size, strlen("require \"fileinto\";\n"));
	cr_assert_arr_eq(e->data, "require \"fileinto\";\n", e->size);
	bundle_free(&b);

	/* INBOX: no lock file, nothing in tmp/, .Sent bare */
	b = up_get_bundle(inbox_b.base);
	cr_assert_eq(b->tree->count, 9, "%zu entries", b->tree->count);
	find_entry(b->tree, "dovecot.index", BUNDLE_ENTRY_FILE);
	e = find_entry(b->tree, "dovecot.index.log", BUNDLE_ENTRY_FILE);
	cr_assert_eq(e->size, 300);
	find_entry(b->tree, "dovecot-uidlist", BUNDLE_ENTRY_FILE);
	find_entry(b->tree, "subscriptions", BUNDLE_ENTRY_FILE);
	cr_assert_null(bundle_tree_find(b->tree, "dovecot-uidlist.lock"));
	find_entry(b->tree, "cur", BUNDLE_ENTRY_DIR);
	find_entry(b->tree, "new", BUNDLE_ENTRY_DIR);
	find_entry(b->tree, "tmp", BUNDLE_ENTRY_DIR);
	assert_no_children(b->tree, "tmp");
	e = find_entry(b->tree, STUB1 + strlen("Maildir/"),
		       BUNDLE_ENTRY_STUB);
	up_mail_key(GUID_INBOX, OID(1), key, sizeof(key));
	cr_assert_str_eq(e->key, key);
	cr_assert_eq(e->size, 100);
	e = find_entry(b->tree, ".Sent", BUNDLE_ENTRY_DIR);
	cr_assert_str_eq(e->guid, GUID_SENT);
	assert_no_children(b->tree, ".Sent");
	bundle_free(&b);

	/* .Sent: its own tree */
	b = up_get_bundle(sent_b.base);
	cr_assert_eq(b->tree->count, 5, "%zu entries", b->tree->count);
	find_entry(b->tree, "dovecot.index", BUNDLE_ENTRY_FILE);
	e = find_entry(b->tree, STUB2 + strlen("Maildir/.Sent/"),
		       BUNDLE_ENTRY_STUB);
	up_mail_key(GUID_SENT, OID(2), key, sizeof(key));
	cr_assert_str_eq(e->key, key);
	bundle_free(&b);

	/* nothing else in the user's part of the store */
	struct objtest_list list = { 0 };

	cr_assert_eq(objtest_list(up_store, up_user->prefix, NULL, &list), 0);
	cr_assert_eq(list.count, 3);
	objtest_list_free(&list);

	/* the live keys are remembered; the user is clean */
	cr_assert_eq(up_state_lines(), 3);
	cr_assert_not(users_is_dirty(up_user));
	cr_assert_not(up_dirty_marker_exists());
	cr_assert_eq(up_gc_stats().condemned, 0);
}

Test(fs_upload_bundles, first_folder_upload_stores_everything)
{
	struct up_bundles b;

	up_make_tree();
	up_changed();
	/* a folder is found again only through the user root: the first
	   upload stores all of it */
	cr_assert_eq(upload_user(up_ctx, up_user, "Maildir"), 0);
	up_assert_bundles(NULL, 0, &b);
	up_assert_bundles(GUID_INBOX, 0, &b);
	up_assert_bundles(GUID_SENT, 0, &b);
	cr_assert_eq(up_stats().bases, 3);
}

Test(fs_upload_bundles, changed_index_gives_a_diff_on_the_base)
{
	struct up_bundles before, after, after2;
	struct bundle *base, *diff;
	const char *error;

	up_make_tree();
	full_upload();
	up_assert_bundles(GUID_INBOX, 0, &before);

	up_write("Maildir/dovecot.index.log", "appended", 8, true);
	full_upload();
	up_assert_bundles(GUID_INBOX, 1, &after);
	cr_assert_str_eq(after.base, before.base);
	struct upload_stats stats = up_stats();

	cr_assert_eq(stats.bases, 3);
	cr_assert_eq(stats.diffs, 1);
	cr_assert_eq(stats.unchanged, 2, "user root and .Sent unchanged");
	/* the other roots are untouched */
	up_assert_bundles(NULL, 0, &after2);
	up_assert_bundles(GUID_SENT, 0, &after2);
	/* the first diff supersedes nothing */
	cr_assert_eq(up_gc_stats().condemned, 0);

	base = up_get_bundle(after.base);
	diff = up_get_bundle(after.diffs[0]);
	cr_assert_eq(diff->info.kind, BUNDLE_KIND_DIFF);
	cr_assert_eq(diff->info.seq, 1);
	cr_assert_arr_eq(diff->info.base_digest, base->info.digest,
			 BUNDLE_DIGEST_SIZE);
	cr_assert_arr_eq(diff->info.base_id, base->info.id, BUNDLE_ID_SIZE);
	cr_assert_arr_eq(diff->info.id, after.diff_names[0].diff_id,
			 BUNDLE_ID_SIZE);
	cr_assert_eq(bundle_apply_diff(base->tree, diff->diff, &error), 0,
		     "%s", error);
	const struct bundle_entry *e =
		find_entry(base->tree, "dovecot.index.log", BUNDLE_ENTRY_FILE);

	cr_assert_eq(e->size, 308);
	cr_assert_arr_eq(e->data + 300, "appended", 8);
	bundle_free(&diff);
	bundle_free(&base);

	/* the second diff replaces the first, which is condemned */
	up_write("Maildir/dovecot.index.log", "more", 4, true);
	full_upload();
	cr_assert_eq(up_gc_stats().condemned, 1);
	up_assert_bundles(GUID_INBOX, 2, &after2);
	cr_assert(up_object_exists(after.diffs[0]));
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(after.diffs[0]));
	up_assert_bundles(GUID_INBOX, 1, &after2);
	cr_assert_str_eq(after2.base, before.base);
	diff = up_get_bundle(after2.diffs[0]);
	cr_assert_eq(diff->info.seq, 2);
	bundle_free(&diff);
	cr_assert_eq(up_state_lines(), 4);
	cr_assert_not(users_is_dirty(up_user));
}

Test(fs_upload_bundles, unchanged_tree_stores_nothing)
{
	struct objstore_stats before, after;

	up_make_tree();
	full_upload();
	objstore_get_stats(up_store, &before);
	/* a change that changed nothing */
	full_upload();
	objstore_get_stats(up_store, &after);
	struct upload_stats stats = up_stats();

	cr_assert_eq(stats.unchanged, 3);
	cr_assert_eq(stats.bases, 3);
	cr_assert_eq(stats.diffs, 0);
	cr_assert_eq(stats.passes, 2);
	cr_assert_eq(after.requests[OBJSTORE_OP_PUT],
		     before.requests[OBJSTORE_OP_PUT]);
	cr_assert_eq(up_gc_stats().condemned, 0);
	cr_assert_not(users_is_dirty(up_user));

	/* changes in tmp/ and to lock files are not changes of the tree
	   (existing files: a new name would change the directory's mtime,
	   which is part of the tree) */
	up_write("Maildir/tmp/3.M3P1.host", "more of it", 10, true);
	up_file("Maildir/dovecot-uidlist.lock", "locked");
	full_upload();
	cr_assert_eq(up_stats().unchanged, 6);
	cr_assert_eq(up_stats().diffs, 0);
}

/* arrays, not pointers: criterion runs each case in a new process */
struct rebase_case {
	size_t base_extra;	/* bytes added to the base */
	size_t diff_add;	/* bytes a later change adds */
	bool rebase;
};

ParameterizedTestParameters(fs_upload_bundles, big_diff_gives_new_base)
{
	static struct rebase_case cases[] = {
		/* below the 16 KiB minimum: a diff even if > half the base */
		{ 0, 8 * 1024, false },
		/* past the minimum and half the base */
		{ 0, 20 * 1024, true },
		/* past the minimum, below half the base */
		{ 100 * 1024, 20 * 1024, false },
		{ 100 * 1024, 60 * 1024, true },
	};
	return cr_make_param_array(struct rebase_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct rebase_case *c, fs_upload_bundles,
		  big_diff_gives_new_base)
{
	struct up_bundles first, small, big;

	up_make_tree();
	if (c->base_extra > 0)
		up_write("Maildir/dovecot.index.cache", NULL, c->base_extra,
			 false);
	/* filled later: a new name would change the directory's mtime and
	   so the user root too */
	up_file("Maildir/dovecot.index.big", "");
	full_upload();
	up_assert_bundles(GUID_INBOX, 0, &first);
	/* a small diff first: superseded either way */
	up_write("Maildir/dovecot.index.log", "x", 1, true);
	full_upload();
	up_assert_bundles(GUID_INBOX, 1, &small);
	cr_assert_eq(up_stats().bases, 3);

	up_write("Maildir/dovecot.index.big", NULL, c->diff_add, false);
	full_upload();
	struct upload_stats stats = up_stats();

	if (!c->rebase) {
		cr_assert_eq(stats.bases, 3);
		cr_assert_eq(stats.diffs, 2);
		cr_assert_eq(up_gc_stats().condemned, 1);
		cr_assert_eq(objgc_flush(up_gc), 0);
		up_assert_bundles(GUID_INBOX, 1, &big);
		cr_assert_str_eq(big.base, first.base);
		cr_assert_str_neq(big.diffs[0], small.diffs[0]);
		cr_assert_geq(stats.last_diff_bytes, c->diff_add);
		return;
	}
	cr_assert_eq(stats.bases, 4);
	cr_assert_eq(stats.diffs, 1);
	/* the old base and its diff */
	cr_assert_eq(up_gc_stats().condemned, 2);
	cr_assert(up_object_exists(first.base));
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(first.base));
	cr_assert_not(up_object_exists(small.diffs[0]));
	up_assert_bundles(GUID_INBOX, 0, &big);
	cr_assert_str_neq(big.base, first.base);
	struct bundle *b = up_get_bundle(big.base);

	find_entry(b->tree, "dovecot.index.big", BUNDLE_ENTRY_FILE);
	bundle_free(&b);
	/* the next change is a diff on the new base */
	up_write("Maildir/dovecot.index.log", "y", 1, true);
	full_upload();
	up_assert_bundles(GUID_INBOX, 1, &small);
	cr_assert_str_eq(small.base, big.base);
	cr_assert_eq(up_state_lines(), 4);
}

Test(fs_upload_bundles, deleted_folder_bundles_are_condemned)
{
	struct up_bundles sent, inbox;

	up_make_tree();
	full_upload();
	up_assert_bundles(GUID_SENT, 0, &sent);
	char path[4096];

	snprintf(path, sizeof(path), "%s/meta/" UP_USER "/Maildir/.Sent",
		 up_cache);
	objtest_rm_rf(path);
	full_upload();
	/* INBOX changed (.Sent is gone from it), and so did the user
	   root (Maildir's mtime); .Sent's base is superseded */
	up_assert_bundles(GUID_INBOX, 1, &inbox);
	up_assert_bundles(NULL, 1, &inbox);
	cr_assert_eq(up_gc_stats().condemned, 1);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(sent.base));
	up_list_bundles(GUID_SENT, &sent);
	cr_assert_eq(sent.base_count + sent.diff_count, 0);
	cr_assert_eq(up_state_lines(), 4);
}

Test(fs_upload_bundles, restart_stores_new_bases_and_deletes_old)
{
	struct up_bundles old_user, old_inbox, old_sent, b;

	up_make_tree();
	full_upload();
	up_write("Maildir/dovecot.index.log", "appended", 8, true);
	full_upload();
	up_assert_bundles(NULL, 0, &old_user);
	up_assert_bundles(GUID_INBOX, 1, &old_inbox);
	up_assert_bundles(GUID_SENT, 0, &old_sent);

	/* a clean restart: no base in memory */
	up_stop(true);
	up_start();
	cr_assert_eq(cachestate_last_run(up_cs), CACHESTATE_CLEAN);
	cr_assert_eq(up_state_lines(), 4);
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	struct upload_stats stats = up_stats();

	cr_assert_eq(stats.bases, 3);
	cr_assert_eq(stats.diffs, 0);
	cr_assert_eq(up_gc_stats().condemned, 4);
	cr_assert_eq(up_state_lines(), 3);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(old_user.base));
	cr_assert_not(up_object_exists(old_inbox.base));
	cr_assert_not(up_object_exists(old_inbox.diffs[0]));
	cr_assert_not(up_object_exists(old_sent.base));
	up_assert_bundles(NULL, 0, &b);
	cr_assert_str_neq(b.base, old_user.base);
	up_assert_bundles(GUID_INBOX, 0, &b);
	cr_assert_str_neq(b.base, old_inbox.base);
	struct bundle *bundle = up_get_bundle(b.base);
	const struct bundle_entry *e = find_entry(bundle->tree,
		"dovecot.index.log", BUNDLE_ENTRY_FILE);

	cr_assert_eq(e->size, 308);
	bundle_free(&bundle);
	up_assert_bundles(GUID_SENT, 0, &b);
	cr_assert_str_neq(b.base, old_sent.base);
}

Test(fs_upload_bundles, restart_with_damaged_state_file)
{
	char path[4096], prefix[512], keys[4][1024], h1[3], h2[4];
	FILE *f;

	up_make_tree();
	full_upload();
	up_stop(true);
	/* junk in the live-keys file, naming existing objects: another
	   user's key, a bad guid, a bad key, a torn line; none of them may
	   be deleted */
	ids_user_hash(UP_USER, h1, h2);
	snprintf(prefix, sizeof(prefix), "%s/%s/%s", h1, h2, UP_USER);
	snprintf(keys[0], sizeof(keys[0]), "%s/%s/other@example.com/idx/x",
		 h1, h2);
	snprintf(keys[1], sizeof(keys[1]), "%s/mailboxes/y/idx/y", prefix);
	snprintf(keys[2], sizeof(keys[2]), "%s/idx/torn", prefix);
	snprintf(keys[3], sizeof(keys[3]), "%s/idx/z", prefix);
	for (unsigned int i = 0; i < 4; i++)
		up_put_object(keys[i]);
	snprintf(path, sizeof(path), "%s/state/bundles/" UP_USER, up_cache);
	f = fopen(path, "a");
	cr_assert_not_null(f);
	fprintf(f, "- %s\n", keys[0]);
	fprintf(f, "NOTAGUID %s\n", keys[1]);
	fprintf(f, "- %s/idx/../../x\n", prefix);
	fprintf(f, "nospace\n\n");
	fprintf(f, "-%s\n", keys[3]);
	fprintf(f, "- %s", keys[2]);
	fclose(f);

	up_start();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	cr_assert_eq(up_gc_stats().condemned, 3);
	cr_assert_eq(objgc_flush(up_gc), 0);
	for (unsigned int i = 0; i < 4; i++)
		cr_assert(up_object_exists(keys[i]), "%s deleted", keys[i]);
	cr_assert_eq(up_state_lines(), 3);
}

Test(fs_upload_bundles, many_diffs_give_new_base)
{
	struct up_bundles first, b;
	unsigned int i;

	up_make_tree();
	full_upload();
	up_assert_bundles(GUID_INBOX, 0, &first);
	/* 64 small diffs on one base, then a new base */
	for (i = 1; i <= 64; i++) {
		up_write("Maildir/dovecot.index.log", "z", 1, true);
		full_upload();
		cr_assert_eq(up_stats().diffs, i);
		cr_assert_eq(up_stats().bases, 3);
	}
	up_write("Maildir/dovecot.index.log", "z", 1, true);
	full_upload();
	cr_assert_eq(up_stats().bases, 4);
	cr_assert_eq(up_stats().diffs, 64);
	cr_assert_eq(objgc_flush(up_gc), 0);
	up_assert_bundles(GUID_INBOX, 0, &b);
	cr_assert_str_neq(b.base, first.base);
	cr_assert_not(up_object_exists(first.base));
	struct bundle *bundle = up_get_bundle(b.base);
	const struct bundle_entry *e = find_entry(bundle->tree,
		"dovecot.index.log", BUNDLE_ENTRY_FILE);

	cr_assert_eq(e->size, 300 + 65);
	bundle_free(&bundle);
}

Test(fs_upload_bundles, condemned_bundles_deleted_after_restart)
{
	struct up_bundles first, b;

	up_make_tree();
	full_upload();
	up_write("Maildir/dovecot.index.log", "a", 1, true);
	full_upload();
	up_assert_bundles(GUID_INBOX, 1, &first);
	up_write("Maildir/dovecot.index.log", "b", 1, true);
	full_upload();
	cr_assert_eq(up_gc_stats().condemned, 1);
	/* killed before the flush: the garbage file remembers */
	up_stop(false);
	up_start();
	cr_assert_eq(cachestate_last_run(up_cs), CACHESTATE_KILLED);
	cr_assert_eq(up_gc_stats().condemned, 1);
	cr_assert(up_object_exists(first.diffs[0]));
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(first.diffs[0]));
	up_assert_bundles(GUID_INBOX, 1, &b);
	cr_assert_str_eq(b.base, first.base);
}

Test(fs_upload_bundles, folder_deleted_while_stopped)
{
	struct up_bundles sent, b;
	char path[4096];

	up_make_tree();
	full_upload();
	up_assert_bundles(GUID_SENT, 0, &sent);
	up_stop(true);
	snprintf(path, sizeof(path), "%s/meta/" UP_USER "/Maildir/.Sent",
		 up_cache);
	objtest_rm_rf(path);
	up_start();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	/* new bases for the two roots left, the old ones and .Sent's
	   condemned */
	cr_assert_eq(up_stats().bases, 2);
	cr_assert_eq(up_gc_stats().condemned, 3);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert_not(up_object_exists(sent.base));
	up_list_bundles(GUID_SENT, &b);
	cr_assert_eq(b.base_count + b.diff_count, 0);
	up_assert_bundles(NULL, 0, &b);
	up_assert_bundles(GUID_INBOX, 0, &b);
	cr_assert_eq(up_state_lines(), 2);
}

Test(fs_upload_bundles, over_long_state_line_is_junk)
{
	char path[4096], key[1024], h1[3], h2[4];
	/* as long as roots_read()'s line buffer takes at once */
	size_t pad = OBJSTORE_KEY_MAX + 64;
	char *junk = malloc(pad + 1);
	FILE *f;

	cr_assert_not_null(junk);
	up_make_tree();
	full_upload();
	up_stop(true);
	/* an over-long line whose tail looks like a line of its own */
	ids_user_hash(UP_USER, h1, h2);
	snprintf(key, sizeof(key), "%s/%s/%s/idx/not-a-bundle", h1, h2,
		 UP_USER);
	up_put_object(key);
	memset(junk, 'x', pad);
	junk[pad] = '\0';
	snprintf(path, sizeof(path), "%s/state/bundles/" UP_USER, up_cache);
	f = fopen(path, "a");
	cr_assert_not_null(f);
	fprintf(f, "%s- %s\n", junk, key);
	fclose(f);
	free(junk);

	up_start();
	cr_assert_eq(upload_user(up_ctx, up_user, NULL), 0);
	cr_assert_eq(objgc_flush(up_gc), 0);
	cr_assert(up_object_exists(key), "the tail of an over-long line "
		  "was read as a live key and %s deleted", key);
	cr_assert_eq(up_state_lines(), 3);
}
