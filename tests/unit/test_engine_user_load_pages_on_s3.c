/* test_engine_user_load_pages_on_s3.c: on S3, where a listing comes in
 * pages, a cold load of a user whose INBOX has more mails than the first
 * page holds costs three LISTs: the first page (100 keys: the user root's
 * bundle keys sort first, then the INBOX's mails), the INBOX's idx/ and
 * the listing from its watermark; not a second page of mails before the
 * skip.  Its bundles are fetched ahead, and it costs no other GET. */
#include "test_engine.h"

TestSuite(engine_user_load_pages_on_s3, .init = eng_init_s3,
	  .fini = eng_fini, .timeout = 240);

#define MAILS 150

Test(engine_user_load_pages_on_s3, a_full_first_page_skips_to_the_watermark)
{
	char name[64], keys[1][1024];
	unsigned int bundles;
	uint64_t gets, lists;
	struct obox *a, *b;

	a = eng_open("cache-a");
	eng_make_user(a);
	for (unsigned int i = 0; i < MAILS; i++) {
		snprintf(name, sizeof(name), "1700000000.M%uP1.host", i);
		eng_deliver(a, ENG_USER "/Maildir", name, ENG_MAIL);
	}
	cr_assert_eq(obox_upload_now(a), 0);
	obox_deinit(&a);
	bundles = eng_store_keys(ENG_USER_BUNDLE_RE, keys, 0) +
		eng_store_keys(ENG_FOLDER_BUNDLE_RE, keys, 0);
	cr_assert_geq(eng_store_keys(ENG_USER_BUNDLE_RE, keys, 0), 1);

	b = eng_open("cache-b");
	/* the store's probe at init, the root's attributes */
	lists = eng_stat(b, "requests_list");
	gets = eng_stat(b, "requests_get");
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	cr_assert_eq(eng_stat(b, "requests_list") - lists, 3,
		     "%" PRIu64 " LISTs", eng_stat(b, "requests_list") - lists);
	cr_assert_eq(eng_stat(b, "index_load_folders_list_skipped"), 1);
	cr_assert_eq(eng_stat(b, "requests_get") - gets, bundles,
		     "%" PRIu64 " GETs for %u bundles",
		     eng_stat(b, "requests_get") - gets, bundles);
	for (unsigned int i = 0; i < MAILS; i++) {
		snprintf(name, sizeof(name),
			 ENG_USER "/Maildir/new/1700000000.M%uP1.host", i);
		eng_assert_mail_stub(b, name);
	}
	obox_deinit(&b);
}
