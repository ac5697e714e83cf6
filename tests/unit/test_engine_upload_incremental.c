/* test_engine_upload_incremental.c: through obox.h, without a mount: an
 * upload pass reads again only the files told changed (obox_touched())
 * since their root's last scan, takes the others from that scan, and what
 * it stores is still the whole truth: an index file rewritten in place
 * with the same size and mtime, and told, is what another cache loads. */
#include "test_engine.h"

TestSuite(engine_upload_incremental, .init = eng_init, .fini = eng_fini);

#define INDEX ENG_USER "/Maildir/dovecot.index"

Test(engine_upload_incremental, only_told_changes_are_read_again)
{
	struct obox *a = eng_open("cache-a"), *b;
	uint64_t read0, reused0;
	struct timespec times[2];
	struct stat st;
	char name[64], *data;
	size_t len;
	int fd;

	eng_make_user(a);
	for (unsigned int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "%u.M%uP1.host", 1700000000 + i, i);
		eng_deliver(a, ENG_USER "/Maildir", name, ENG_MAIL);
	}
	eng_write_file(a, INDEX, "index version 1");
	cr_assert_eq(obox_upload_now(a), 0);
	read0 = eng_stat(a, "index_scan_files_read");
	reused0 = eng_stat(a, "index_scan_files_reused");
	cr_assert_geq(read0, 21, "the first pass reads every file (%ju)",
		      (uintmax_t)read0);

	/* in place, same size and times: only the report tells */
	fd = openat(obox_meta_fd(a), INDEX, O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	obox_change_begin(a, obox_user_get(a, ENG_USER));
	cr_assert_eq(pwrite(fd, "index version 2", 15, 0), 15);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	cr_assert_eq(futimens(fd, times), 0);
	obox_touched(obox_user_get(a, ENG_USER), st.st_ino);
	obox_change_end(obox_user_get(a, ENG_USER));
	close(fd);
	cr_assert_eq(obox_upload_now(a), 0);
	cr_assert_eq(eng_stat(a, "index_scan_files_read") - read0, 1,
		     "the second pass read %ju files",
		     (uintmax_t)(eng_stat(a, "index_scan_files_read") - read0));
	cr_assert_geq(eng_stat(a, "index_scan_files_reused") - reused0, 20);
	obox_deinit(&a);

	b = eng_open("cache-b");
	cr_assert_eq(obox_user_load(b, ENG_USER), 0);
	data = eng_read(b, INDEX, &len);
	cr_assert_str_eq(data, "index version 2");
	free(data);
	obox_deinit(&b);
}
