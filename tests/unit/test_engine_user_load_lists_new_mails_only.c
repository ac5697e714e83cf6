/* test_engine_user_load_lists_new_mails_only.c: a cold load of a big
 * folder does not list the mail objects its bundle already covers: mail
 * oids are time-ordered and the bundle carries a watermark, so after one
 * page of the folder's mails the load lists the folder's bundles, fetches
 * them and goes on from the watermark (engine/userload-list.c): at the
 * end of the first page of 100 keys (objstore_list_paced()), the user
 * root's bundle keys and then the folder's mails.  What
 * must still hold: every mail in the bundle or stored after it is there;
 * and with two writers' bundles the whole folder is listed.
 *
 * The folder's 1,100 "old" mails are objects another machine stored a
 * year ago (old oids, with the metadata a put-back needs).
 */
#include "test_engine.h"
#include "ids.h"
#include "keys.h"

#include <sys/time.h>

TestSuite(engine_user_load_new_mails, .init = eng_init, .fini = eng_fini,
	  .timeout = 120);

#define OLD_MAILS 1100
#define NEW_MAILS 3

static char guid[33];

/* a mail object of folder folder_guid made at time secs, as if delivered
   to dir (relative to the user) under name */
static void put_folder_mail(const char *folder_guid, const char *dir,
			    uint32_t secs, unsigned int n, const char *name,
			    char *key_r)
{
	char oid[IDS_HEX_LEN + 1], prefix[IDS_TIME_HEX_LEN + 1];
	const struct objstore_meta meta[] = {
		{ .name = "path", .value = dir },
		{ .name = "name", .value = name },
		{ .name = "mtime", .value = "1600000000" },
	};

	ids_time_prefix(secs, n % 1000000, prefix);
	snprintf(oid, sizeof(oid), "%s%019u", prefix, n);
	cr_assert_eq(keys_mail_key(ENG_USER, folder_guid, oid, key_r, 1024),
		     0);
	cr_assert_eq(objstore_put(eng_store, key_r, ENG_MAIL,
				  strlen(ENG_MAIL), meta, 3), 0, "%s",
		     objstore_error());
}

/* a mail object of the INBOX made at time secs, as if delivered to new/
   under name */
static void put_mail_object(uint32_t secs, unsigned int n, const char *name,
			    char *key_r)
{
	put_folder_mail(guid, "Maildir/new", secs, n, name, key_r);
}

static bool present(struct obox *obox, const char *name)
{
	char path[1024];
	int fd, ret;

	snprintf(path, sizeof(path), ENG_USER "/Maildir/new/%s", name);
	if (faccessat(obox_meta_fd(obox), path, F_OK,
		      AT_SYMLINK_NOFOLLOW) == 0)
		return true;
	/* a big new/ is loaded lazily: the name is made when looked up */
	fd = openat(obox_meta_fd(obox), ENG_USER "/Maildir/new",
		    O_PATH | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	ret = obox_lazy_lookup(obox, obox_user_get(obox, ENG_USER), fd, name);
	close(fd);
	return ret == 1;
}

/* The store holds OLD_MAILS year-old mails, one bundle (uploaded now:
   its watermark is after them), NEW_MAILS mails delivered since, and a
   released object "released" made an hour ago (before the watermark,
   not in the bundle: an expunged mail not deleted yet).  Returns the
   released object's key. */
static void fill_store(char released_key[1024])
{
	struct obox *a = eng_open("cache-a"), *b;
	char keys[1][1024], name[64], key[1024];
	struct timeval now;

	/* the user and its INBOX GUID, from one delivery */
	eng_make_user(a);
	eng_deliver(a, ENG_USER "/Maildir", "first", ENG_MAIL);
	cr_assert_eq(eng_mail_keys(keys, 1), 1);
	eng_key_guid(keys[0], guid);
	obox_deinit(&a);

	gettimeofday(&now, NULL);
	for (unsigned int i = 0; i < OLD_MAILS; i++) {
		snprintf(name, sizeof(name), "old%04u", i);
		put_mail_object((uint32_t)now.tv_sec - 365 * 86400, i, name,
				key);
	}
	/* a machine takes the user over (all put back) and uploads */
	b = eng_open("cache-b");
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	/* and "first": never uploaded */
	cr_assert_eq(eng_stat(b, "index_mails_put_back"), OLD_MAILS + 1);
	cr_assert_eq(obox_upload_now(b), 0);
	for (unsigned int i = 0; i < NEW_MAILS; i++) {
		snprintf(name, sizeof(name), "new%u", i);
		eng_deliver(b, ENG_USER "/Maildir", name, ENG_MAIL);
	}
	obox_deinit(&b);
	put_mail_object((uint32_t)now.tv_sec - 3600, 7, "released",
			released_key);
}

/* the INBOX mails in the first page of 100 keys: after the user root's
   bundle keys */
static uint64_t first_page_mails(void)
{
	char keys[1][1024];
	unsigned int root_bundles = eng_store_keys(ENG_USER_BUNDLE_RE, keys,
						   0);

	cr_assert_geq(root_bundles, 1);
	return 100 - root_bundles;
}

Test(engine_user_load_new_mails, big_folder_is_listed_from_its_watermark)
{
	char released[1024], name[64];
	struct obox *c;

	fill_store(released);
	c = eng_open("cache-c");
	cr_assert_eq(obox_user_load(c, ENG_USER), 0);
	/* one page of the folder, then only what came after the watermark:
	   the new mails */
	cr_assert_eq(eng_stat(c, "index_load_folders_list_skipped"), 1);
	cr_assert_eq(eng_stat(c, "index_load_mails_listed"),
		     first_page_mails() + NEW_MAILS, "listed %" PRIu64,
		     eng_stat(c, "index_load_mails_listed"));
	/* the user's listing, the folder's idx/, the rest from the mark */
	cr_assert_eq(eng_stat(c, "requests_list"), 3);
	cr_assert_eq(eng_stat(c, "index_mails_put_back"), NEW_MAILS);
	cr_assert(present(c, "first"));
	for (unsigned int i = 0; i < OLD_MAILS; i++) {
		snprintf(name, sizeof(name), "old%04u", i);
		cr_assert(present(c, name), "%s is missing", name);
	}
	for (unsigned int i = 0; i < NEW_MAILS; i++) {
		snprintf(name, sizeof(name), "new%u", i);
		cr_assert(present(c, name), "%s is missing", name);
		snprintf(name, sizeof(name), ENG_USER "/Maildir/new/new%u", i);
		eng_assert_mail_stub(c, name);
	}
	/* older than the watermark and in no bundle: released, not put
	   back */
	cr_assert(!present(c, "released"));
	/* the metacache knows the tree's size from the load, not a walk */
	cr_assert_eq(eng_stat(c, "oboxfs_metacache_walks_total"), 0);
	cr_assert_gt(eng_stat(c, "oboxfs_metacache_bytes"), 1100 * 16);
	obox_deinit(&c);
}

/* A mail stored at its fsync in tmp/ (store_on_fsync) before an upload and
   renamed into new/ after it: its oid is older than that bundle's time,
   and it is in no bundle.  The snapshot saw its stub in tmp/ and took its
   oid's time as the watermark, so a load lists it and puts it back. */
Test(engine_user_load_new_mails, mail_named_after_an_upload_comes_back)
{
	char released[1024];
	struct obox *b, *c;
	int err;

	fill_store(released);
	b = eng_open("cache-b");
	eng_write_file(b, ENG_USER "/Maildir/tmp/synced", ENG_MAIL);
	err = eng_fsync(b, ENG_USER "/Maildir/tmp", "synced");
	cr_assert_eq(err, 0, "%s", strerror(err));
	cr_assert_eq(eng_stat(b, "mails_stored_at_fsync"), 1);
	cr_assert_eq(obox_upload_now(b), 0);
	err = eng_rename(b, ENG_USER "/Maildir/tmp", "synced",
			 ENG_USER "/Maildir/new", "synced");
	cr_assert_eq(err, 0, "%s", strerror(err));
	/* acknowledged; the machine dies before its next upload */
	obox_deinit(&b);

	c = eng_open("cache-c");
	cr_assert_eq(obox_user_load(c, ENG_USER), 0);
	cr_assert(present(c, "synced"), "an acknowledged delivery was lost");
	eng_assert_mail_stub(c, ENG_USER "/Maildir/new/synced");
	/* still listed from a watermark, not whole */
	cr_assert_eq(eng_stat(c, "index_load_folders_list_skipped"), 1);
	obox_deinit(&c);
}

/* a second base (another writer, or an old one not deleted yet): the
   watermark of one chain says nothing of the other's mails */
Test(engine_user_load_new_mails, two_bases_list_the_whole_folder)
{
	char released[1024], bundles[4][1024], other[1024];
	struct obox *c;
	const char *p;

	fill_store(released);
	cr_assert_eq(eng_store_keys(ENG_FOLDER_BUNDLE_RE, bundles, 4), 1);
	/* the same base under an older name */
	p = strstr(bundles[0], "/idx/bundle.");
	cr_assert_not_null(p);
	snprintf(other, sizeof(other), "%.*s/idx/bundle.00000001.00000.%s",
		 (int)(p - bundles[0]), bundles[0],
		 "0123456789abcdef0123456789abcdef");
	cr_assert_eq(objstore_copy(eng_store, bundles[0], other), 0, "%s",
		     objstore_error());
	c = eng_open("cache-c");
	cr_assert_eq(obox_user_load(c, ENG_USER), 0);
	cr_assert_eq(eng_stat(c, "index_load_folders_list_skipped"), 0);
	cr_assert_eq(eng_stat(c, "index_load_mails_listed"),
		     1 + OLD_MAILS + NEW_MAILS + 1);
	cr_assert(present(c, "released"));
	cr_assert(present(c, "new0"));
	cr_assert(present(c, "old1099"));
	obox_deinit(&c);
}

/* Only a first folder is skipped after the first page's 100 keys: a
   later folder of a few hundred mails is listed whole, as a skip (a LIST
   of its idx/ and a new listing) would cost more than the rest of its
   keys; the INBOX, first, is skipped. */
Test(engine_user_load_new_mails, a_later_folder_of_a_few_hundred_is_listed)
{
	static const char later[] = "ffffffffffffffffffffffffffffffff";
	char released[1024], key[1024], name[64];
	struct timeval now;
	struct obox *c;

	fill_store(released);
	cr_assert_lt(strcmp(guid, later), 0);
	gettimeofday(&now, NULL);
	for (unsigned int i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "later%03u", i);
		put_folder_mail(later, "Maildir/.Later/new",
				(uint32_t)now.tv_sec - 365 * 86400, i, name,
				key);
	}
	c = eng_open("cache-c");
	cr_assert_eq(obox_user_load(c, ENG_USER), 0);
	cr_assert_eq(eng_stat(c, "index_load_folders_list_skipped"), 1);
	cr_assert_eq(eng_stat(c, "index_load_mails_listed"),
		     first_page_mails() + NEW_MAILS + 150, "listed %" PRIu64,
		     eng_stat(c, "index_load_mails_listed"));
	/* the user's listing, the INBOX's idx/, the rest from its mark:
	   no listing of the later folder's idx/, no listing after it */
	cr_assert_eq(eng_stat(c, "requests_list"), 3, "%" PRIu64 " LISTs",
		     eng_stat(c, "requests_list"));
	obox_deinit(&c);
}

/* The bundles a load needs are fetched side by side with the listing and
   with each other (objstore-fetch.h), and no GET more than those
   bundles: the user root's while the INBOX's idx/ is listed, the INBOX's
   base and diff together.  Every request here takes 100 ms, so the
   fetcher's threads are under way before the load asks for the bytes. */
Test(engine_user_load_new_mails, bundles_are_fetched_ahead_side_by_side)
{
	char released[1024], keys[1][1024];
	unsigned int bundles;
	uint64_t gets;
	struct obox *c;

	fill_store(released);
	/* a diff of the INBOX too: a restarted machine's first pass stores
	   a new base, its second a diff */
	c = eng_open("cache-b");
	eng_deliver(c, ENG_USER "/Maildir", "later", ENG_MAIL);
	cr_assert_eq(obox_upload_now(c), 0);
	eng_deliver(c, ENG_USER "/Maildir", "later2", ENG_MAIL);
	cr_assert_eq(obox_upload_now(c), 0);
	obox_deinit(&c);
	bundles = eng_store_keys(ENG_USER_BUNDLE_RE, keys, 0) +
		eng_store_keys(ENG_FOLDER_BUNDLE_RE, keys, 0);
	/* the user root's base, the INBOX's base and diff */
	cr_assert_eq(bundles, 3, "%u bundles", bundles);
	eng_fault = "ops=get+list;latency_ms=100;rate=0";
	c = eng_open("cache-c");
	eng_fault = NULL;
	gets = eng_stat(c, "requests_get");	/* the root's attributes */
	cr_assert_eq(obox_user_load(c, ENG_USER), 0);
	cr_assert_eq(eng_stat(c, "requests_get") - gets, bundles,
		     "%" PRIu64 " GETs", eng_stat(c, "requests_get") - gets);
	/* the user root's base (during the INBOX's idx/ LIST) and the
	   INBOX's diff (during its base's GET) at least: the INBOX base's
	   thread may not have started when the load takes it, and the load
	   then GETs it itself */
	cr_assert_geq(eng_stat(c, "index_load_bundles_fetched_ahead"), 2,
		      "%" PRIu64 " fetched ahead",
		      eng_stat(c, "index_load_bundles_fetched_ahead"));
	cr_assert_eq(eng_stat(c, "requests_list"), 3);
	cr_assert(present(c, "old0000"));
	cr_assert(present(c, "new0"));
	cr_assert(present(c, "later"));
	cr_assert(present(c, "later2"));
	obox_deinit(&c);
}
