/* test_engine_maildirkw.c: a maildir folder's dovecot-keywords
 * (engine/maildirkw.h): untrusted text parsed as Dovecot reads it, names
 * looked up without case and added at the first free letter, the file
 * written in place with an mtime that moves on. */
#include "helper-objstore.h"
#include "maildirkw.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct parse_case {
	char text[128];
	/* the list formatted again: what was taken */
	char kept[128];
};

ParameterizedTestParameters(engine_maildirkw, parse)
{
	static struct parse_case cases[] = {
		{ "0 Junk\n1 $Forwarded\n", "0 Junk\n1 $Forwarded\n" },
		/* no newline at the end; order by index */
		{ "3 c\n0 a", "0 a\n3 c\n" },
		{ "25 last\n", "25 last\n" },
		/* a later line for one index wins */
		{ "0 a\n0 b\n", "0 b\n" },
		/* out of range, not a number, no name, no space */
		{ "26 x\n100 y\n", "" },
		{ "-1 x\nx 1\n", "" },
		{ "1 \n2\n3x y\n", "" },
		/* names that are not atoms */
		{ "0 two words\n1 tab\there\n2 ok\n", "2 ok\n" },
		{ "0 \x01" "ctl\n1 del\x7f\n2 hi\xc3\xa9\n", "" },
		{ "", "" },
		{ "\n\n\n", "" },
	};
	return cr_make_param_array(struct parse_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct parse_case *c, engine_maildirkw, parse)
{
	struct maildirkw kw = { 0 };
	size_t len;
	char *text;

	maildirkw_parse(&kw, c->text, strlen(c->text));
	text = maildirkw_format(&kw, &len);
	cr_assert_not_null(text);
	cr_assert_str_eq(text, c->kept, "parsing \"%s\"", c->text);
	cr_assert_eq(len, strlen(c->kept));
	cr_assert_not(kw.changed);
	free(text);
	maildirkw_clear(&kw);
}

Test(engine_maildirkw, long_names_are_skipped)
{
	char text[600];
	struct maildirkw kw = { 0 };

	memset(text, 'n', sizeof(text));
	memcpy(text, "0 ", 2);
	text[2 + 255] = '\n';
	memcpy(text + 258, "1 ", 2);
	text[260 + 256] = '\n';
	maildirkw_parse(&kw, text, 260 + 257);
	cr_assert_not_null(kw.names[0]);
	cr_assert_eq(strlen(kw.names[0]), 255);
	cr_assert_null(kw.names[1]);
	maildirkw_clear(&kw);
}

Test(engine_maildirkw, letters_by_name_without_case)
{
	struct maildirkw kw = { 0 };

	maildirkw_parse(&kw, "1 Junk\n3 $Label1\n", 17);
	cr_assert_str_eq(maildirkw_name(&kw, 'b'), "Junk");
	cr_assert_null(maildirkw_name(&kw, 'a'));
	cr_assert_null(maildirkw_name(&kw, 'A'));
	cr_assert_null(maildirkw_name(&kw, '{'));
	cr_assert_eq(maildirkw_letter(&kw, "junk", false), 'b');
	cr_assert_eq(maildirkw_letter(&kw, "$LABEL1", true), 'd');
	cr_assert_not(kw.changed);
	/* absent: only with may_add, at the first free letter */
	cr_assert_eq(maildirkw_letter(&kw, "New", false), 0);
	cr_assert_eq(maildirkw_letter(&kw, "New", true), 'a');
	cr_assert(kw.changed);
	cr_assert_eq(maildirkw_letter(&kw, "Newer", true), 'c');
	cr_assert_eq(maildirkw_letter(&kw, "new", true), 'a');
	/* not an atom: never added */
	cr_assert_eq(maildirkw_letter(&kw, "two words", true), 0);
	cr_assert_eq(maildirkw_letter(&kw, "", true), 0);
	maildirkw_clear(&kw);
}

Test(engine_maildirkw, no_letter_once_all_26_are_taken)
{
	struct maildirkw kw = { 0 };
	char name[16];

	for (unsigned int i = 0; i < MAILDIRKW_MAX; i++) {
		snprintf(name, sizeof(name), "k%u", i);
		cr_assert_eq(maildirkw_letter(&kw, name, true), 'a' + i);
	}
	cr_assert_eq(maildirkw_letter(&kw, "one-more", true), 0);
	cr_assert_eq(maildirkw_letter(&kw, "K25", true), 'z');
	maildirkw_clear(&kw);
}

static void read_text(int dir_fd, char *buf, size_t size)
{
	int fd = openat(dir_fd, MAILDIRKW_FILE, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0);
	n = read(fd, buf, size - 1);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	close(fd);
}

Test(engine_maildirkw, written_in_place_with_a_later_mtime)
{
	char *dir = objtest_mkdtemp("maildirkw");
	struct maildirkw kw = { 0 };
	struct stat before, after;
	struct timespec future[2];
	char text[256];
	int dir_fd, fd;

	cr_assert_not_null(dir);
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir_fd, 0);
	/* no file: an empty list */
	cr_assert_eq(maildirkw_read(dir_fd, &kw), 0);
	cr_assert_null(kw.names[0]);
	/* made, with the directory's owner */
	cr_assert_eq(maildirkw_letter(&kw, "Junk", true), 'a');
	cr_assert_eq(maildirkw_write(dir_fd, &kw), 0);
	read_text(dir_fd, text, sizeof(text));
	cr_assert_str_eq(text, "0 Junk\n");
	cr_assert_eq(fstatat(dir_fd, MAILDIRKW_FILE, &before, 0), 0);
	cr_assert_eq(before.st_mode & 07777, 0600);

	/* an mtime in the future: the next write still moves it on */
	fd = openat(dir_fd, MAILDIRKW_FILE, O_RDONLY);
	cr_assert_geq(fd, 0);
	future[0].tv_sec = future[1].tv_sec = before.st_mtim.tv_sec + 100;
	future[0].tv_nsec = future[1].tv_nsec = 0;
	cr_assert_eq(futimens(fd, future), 0);
	close(fd);
	cr_assert_eq(maildirkw_read(dir_fd, &kw), 0);
	cr_assert_str_eq(kw.names[0], "Junk");
	cr_assert_eq(maildirkw_letter(&kw, "$Forwarded", true), 'b');
	cr_assert_eq(maildirkw_write(dir_fd, &kw), 0);
	cr_assert_eq(fstatat(dir_fd, MAILDIRKW_FILE, &after, 0), 0);
	cr_assert_eq(after.st_ino, before.st_ino, "not written in place");
	cr_assert_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec + 101);
	read_text(dir_fd, text, sizeof(text));
	cr_assert_str_eq(text, "0 Junk\n1 $Forwarded\n");

	/* a shorter list leaves nothing of the longer one behind */
	maildirkw_clear(&kw);
	cr_assert_eq(maildirkw_letter(&kw, "x", true), 'a');
	cr_assert_eq(maildirkw_write(dir_fd, &kw), 0);
	read_text(dir_fd, text, sizeof(text));
	cr_assert_str_eq(text, "0 x\n");
	maildirkw_clear(&kw);
	close(dir_fd);
	objtest_rm_rf(dir);
	free(dir);
}

Test(engine_maildirkw, not_a_regular_file_is_refused)
{
	char *dir = objtest_mkdtemp("maildirkw");
	struct maildirkw kw = { 0 };
	char path[4096];
	int dir_fd;

	cr_assert_not_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, MAILDIRKW_FILE);
	cr_assert_eq(symlink("/etc/passwd", path), 0);
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir_fd, 0);
	cr_assert_eq(maildirkw_read(dir_fd, &kw), -1);
	cr_assert_eq(maildirkw_letter(&kw, "a", true), 'a');
	cr_assert_eq(maildirkw_write(dir_fd, &kw), -1);
	maildirkw_clear(&kw);
	close(dir_fd);
	objtest_rm_rf(dir);
	free(dir);
}
