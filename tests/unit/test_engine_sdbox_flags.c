/* test_engine_sdbox_flags.c: an sdbox folder's flags and keywords as the
 * engine reads them from Dovecot's index files (sdboxflags.h) are what
 * Dovecot itself shows, and the records a split-brain merge appends to
 * the log (sdboxmerge.h) give Dovecot the union of two writers' flags.
 * Dovecot's own imap process makes and reads the folders
 * (tests/fixtures/sdbox-imap.sh, as user nobody), with dovecot.index
 * written at every sync or with the log alone; damaged files are read
 * within their bounds. */
#include "helper-objstore.h"
#include "dovecotfmt.h"
#include "putback.h"
#include "sdboxflags.h"
#include "sdboxmerge.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAILS "mailboxes/INBOX/dbox-Mails"

static char *tmp;

static void init(void)
{
	tmp = objtest_mkdtemp("sdbox-flags");
	cr_assert_not_null(tmp);
	/* Dovecot's process (user nobody) goes through it */
	cr_assert_eq(chmod(tmp, 0755), 0);
}

static void fini(void)
{
	objtest_rm_rf(tmp);
	free(tmp);
}

TestSuite(sdbox_flags, .init = init, .fini = fini, .timeout = 60);

/* Dovecot's imap on tmp/name (index: dovecot.index at every sync) runs
   commands; its replies into out (malloc()ed) */
static char *imap(const char *name, bool index, const char *commands)
{
	const char *src = getenv("OBOXFS_SOURCE_DIR");
	char script[4096], dir[4096], outpath[4096];
	int in[2], status, fd;
	pid_t pid;

	cr_assert_not_null(src, "OBOXFS_SOURCE_DIR is not set (run the test "
			   "through ctest)");
	snprintf(script, sizeof(script), "%s/tests/fixtures/sdbox-imap.sh", src);
	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	snprintf(outpath, sizeof(outpath), "%s/%s.out", tmp, name);
	cr_assert_eq(pipe(in), 0);
	fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close(in[1]);
		execl(script, script, dir, index ? "index" : NULL, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(fd);
	cr_assert_eq(write(in[1], commands, strlen(commands)),
		     (ssize_t)strlen(commands));
	close(in[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "%s failed (status %d)", script, status);

	FILE *f = fopen(outpath, "r");
	char *out = calloc(1, 1 << 20);

	cr_assert_not_null(f);
	cr_assert_not_null(out);
	(void)fread(out, 1, (1 << 20) - 1, f);
	fclose(f);
	cr_assert_null(strstr(out, "Error"), "Dovecot: %s", out);
	cr_assert_null(strstr(out, "orrupt"), "Dovecot: %s", out);
	return out;
}

static int mails_dir(const char *name)
{
	char dir[4096];
	int fd;

	snprintf(dir, sizeof(dir), "%s/%s/" MAILS, tmp, name);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0, "%s", dir);
	return fd;
}

/* what a FETCH reply line says of a mail's flags */
struct shown {
	uint32_t uid;
	uint8_t flags;
	char keywords[8][32];
	unsigned int keyword_count;
};

static unsigned int parse_fetches(const char *out, struct shown *s,
				  unsigned int max)
{
	static const struct { const char *name; uint8_t bit; } sys[] = {
		{ "\\Answered", 0x01 }, { "\\Flagged", 0x02 },
		{ "\\Deleted", 0x04 }, { "\\Seen", 0x08 }, { "\\Draft", 0x10 },
	};
	unsigned int n = 0;
	const char *p = out;

	while ((p = strstr(p, " FETCH (UID ")) != NULL && n < max) {
		const char *fl = strstr(p, "FLAGS (");
		const char *end;
		char tok[64];

		memset(&s[n], 0, sizeof(s[n]));
		s[n].uid = (uint32_t)strtoul(p + 12, NULL, 10);
		cr_assert_not_null(fl);
		fl += 7;
		end = strchr(fl, ')');
		cr_assert_not_null(end);
		while (fl < end) {
			size_t len = strcspn(fl, " )");
			bool known = false;

			cr_assert_lt(len, sizeof(tok));
			memcpy(tok, fl, len);
			tok[len] = '\0';
			for (unsigned int i = 0; i < 5; i++) {
				if (strcmp(tok, sys[i].name) == 0) {
					s[n].flags |= sys[i].bit;
					known = true;
				}
			}
			if (!known && strcmp(tok, "\\Recent") != 0 && len > 0) {
				cr_assert_lt(s[n].keyword_count, 8);
				strcpy(s[n].keywords[s[n].keyword_count++], tok);
			}
			fl += len;
			fl += strspn(fl, " ");
		}
		n++;
		p = end;
	}
	return n;
}

/* f says what Dovecot's FETCH showed, mail by mail */
static void assert_same(const struct sdboxflags *f, const struct shown *s,
			unsigned int n, const char *what)
{
	cr_assert_eq(f->count, n, "%s: %zu mails read, Dovecot shows %u",
		     what, f->count, n);
	for (unsigned int i = 0; i < n; i++) {
		const struct sdboxflags_mail *m = sdboxflags_find(f, s[i].uid);
		unsigned int kw = 0;

		cr_assert_not_null(m, "%s: uid %u not read", what, s[i].uid);
		cr_assert_eq(m->flags, s[i].flags, "%s: uid %u flags %#x, "
			     "Dovecot shows %#x", what, s[i].uid, m->flags,
			     s[i].flags);
		for (unsigned int k = 0; k < f->keyword_count; k++)
			kw += sdboxflags_has_keyword(m, k);
		cr_assert_eq(kw, s[i].keyword_count, "%s: uid %u has %u "
			     "keywords, Dovecot shows %u", what, s[i].uid, kw,
			     s[i].keyword_count);
		for (unsigned int k = 0; k < s[i].keyword_count; k++) {
			int idx = sdboxflags_keyword_index(f, s[i].keywords[k]);

			cr_assert(idx >= 0 && sdboxflags_has_keyword(
					  m, (unsigned int)idx),
				  "%s: uid %u lacks %s", what, s[i].uid,
				  s[i].keywords[k]);
		}
	}
}

/* count mails, each appended with \Seen */
static void append_mails(char *cmd, size_t size, unsigned int count)
{
	size_t len = strlen(cmd);

	for (unsigned int i = 1; i <= count; i++) {
		char m[64];

		snprintf(m, sizeof(m), "Subject: mail %u\r\n\r\nbody\r\n", i);
		len += (size_t)snprintf(cmd + len, size - len,
					"a%u APPEND INBOX (\\Seen) {%zu+}\r\n"
					"%s\r\n", i, strlen(m), m);
	}
}

#define CHANGES \
	"s SELECT INBOX\r\n" \
	"f1 UID STORE 2 +FLAGS (\\Flagged $Label1)\r\n" \
	"n1 NOOP\r\n" \
	"f2 UID STORE 3:4 +FLAGS (\\Answered Junk)\r\n" \
	"f3 UID STORE 1 -FLAGS (\\Seen)\r\n" \
	"n2 NOOP\r\n" \
	"f4 UID STORE 4 -FLAGS (Junk)\r\n" \
	"f5 UID STORE 5 +FLAGS (\\Draft \\Deleted NonJunk $Label2)\r\n" \
	"f6 UID STORE 5 -FLAGS ($Label2)\r\n" \
	"x UID FETCH 1:* (FLAGS)\r\n" \
	"l LOGOUT\r\n"

ParameterizedTestParameters(sdbox_flags, read_as_dovecot_shows_them)
{
	static bool index[] = { false, true };

	return cr_make_param_array(bool, index, 2);
}

ParameterizedTest(bool *index, sdbox_flags, read_as_dovecot_shows_them)
{
	char cmd[8192] = "";
	struct shown shown[16];
	struct sdboxflags f;
	struct stat st;
	unsigned int n;
	char *out;
	int fd;

	append_mails(cmd, sizeof(cmd), 5);
	strcat(cmd, CHANGES);
	out = imap("x", *index, cmd);
	/* x's FETCH of every mail, after the STOREs' replies */
	cr_assert_not_null(strstr(out, "\nf6 OK"), "%s", out);
	n = parse_fetches(strstr(out, "\nf6 OK"), shown, 16);
	cr_assert_eq(n, 5, "%s", out);
	fd = mails_dir("x");
	/* with the index, some changes come from it, the rest from the
	   log after its position */
	cr_assert_eq(fstatat(fd, "dovecot.index", &st, 0) == 0, *index);
	cr_assert_eq(sdboxflags_read(fd, &f), 0);
	close(fd);
	assert_same(&f, shown, n, *index ? "index + log" : "log alone");
	sdboxflags_free(&f);
	free(out);
}

/* x and y: mails 1-4 (\Seen), then their own changes */
#define X_CHANGES \
	"s SELECT INBOX\r\n" \
	"f1 UID STORE 1 +FLAGS (\\Flagged $Label1)\r\n" \
	"f2 UID STORE 2 -FLAGS (\\Seen)\r\n" \
	"f3 UID STORE 3 +FLAGS (Junk)\r\n" \
	"l LOGOUT\r\n"
#define Y_CHANGES \
	"s SELECT INBOX\r\n" \
	"f1 UID STORE 1 +FLAGS (\\Answered)\r\n" \
	"f2 UID STORE 2:3 +FLAGS (\\Draft junk NonJunk)\r\n" \
	"f3 UID STORE 4 +FLAGS (\\Flagged $Label1 $Label2)\r\n" \
	"l LOGOUT\r\n"

/* the union of x's and y's, mail by mail: flags and keywords */
static const struct {
	uint32_t uid;
	uint8_t flags;
	const char *keywords[3];
} union_xy[] = {
	{ 1, 0x08 | 0x02 | 0x01, { "$Label1" } },
	/* x removed \Seen, y kept it: the union has it */
	{ 2, 0x08 | 0x10, { "Junk", "NonJunk" } },
	{ 3, 0x08 | 0x10, { "Junk", "NonJunk" } },
	{ 4, 0x08 | 0x02, { "$Label1", "$Label2" } },
};

static void assert_union(const struct sdboxflags *f, const char *what)
{
	cr_assert_eq(f->count, 4, "%s", what);
	for (unsigned int i = 0; i < 4; i++) {
		const struct sdboxflags_mail *m = sdboxflags_find(f, union_xy[i].uid);
		unsigned int kw = 0, want = 0;

		cr_assert_not_null(m);
		cr_assert_eq(m->flags, union_xy[i].flags,
			     "%s: uid %u flags %#x", what, m->uid, m->flags);
		for (unsigned int k = 0; k < f->keyword_count; k++)
			kw += sdboxflags_has_keyword(m, k);
		for (unsigned int k = 0; k < 3 && union_xy[i].keywords[k]; k++) {
			int idx = sdboxflags_keyword_index(
				f, union_xy[i].keywords[k]);

			want++;
			cr_assert(idx >= 0 && sdboxflags_has_keyword(
					  m, (unsigned int)idx),
				  "%s: uid %u lacks %s", what, m->uid,
				  union_xy[i].keywords[k]);
		}
		cr_assert_eq(kw, want, "%s: uid %u has %u keywords", what,
			     m->uid, kw);
	}
}

ParameterizedTestParameters(sdbox_flags, merged_records_give_dovecot_the_union)
{
	static bool index[] = { false, true };

	return cr_make_param_array(bool, index, 2);
}

ParameterizedTest(bool *index, sdbox_flags,
		  merged_records_give_dovecot_the_union)
{
	struct sdboxmerge_pair pairs[4] = {
		{ 4, 4 }, { 1, 1 }, { 3, 3 }, { 2, 2 },
	};
	struct sdboxflags fx, fy;
	struct sdboxmerge_result r;
	char cmd[8192] = "";
	struct shown shown[8];
	unsigned int n;
	char *out;
	int fd, log;

	append_mails(cmd, sizeof(cmd), 4);
	strcat(cmd, X_CHANGES);
	free(imap("x", *index, cmd));
	cmd[0] = '\0';
	append_mails(cmd, sizeof(cmd), 4);
	strcat(cmd, Y_CHANGES);
	free(imap("y", *index, cmd));

	fd = mails_dir("x");
	cr_assert_eq(sdboxflags_read(fd, &fx), 0);
	close(fd);
	fd = mails_dir("y");
	cr_assert_eq(sdboxflags_read(fd, &fy), 0);
	close(fd);
	sdboxmerge_records(&fx, &fy, pairs, 4, &r);
	/* mails 1-4 each lacked something of y's */
	cr_assert_eq(r.mails, 4);
	cr_assert_not_null(r.records);
	fd = mails_dir("x");
	log = openat(fd, "dovecot.index.log", O_WRONLY | O_APPEND);
	cr_assert_geq(log, 0);
	cr_assert_eq(write(log, r.records, r.size), (ssize_t)r.size);
	close(log);
	sdboxmerge_result_free(&r);
	sdboxflags_free(&fx);

	/* Dovecot takes them (no error: imap() checks) and shows the union */
	out = imap("x", *index, "s SELECT INBOX\r\n"
		   "x UID FETCH 1:* (FLAGS)\r\nl LOGOUT\r\n");
	n = parse_fetches(out, shown, 8);
	cr_assert_eq(n, 4, "%s", out);
	cr_assert_eq(sdboxflags_read(fd, &fx), 0);
	assert_same(&fx, shown, n, "after the merge");
	assert_union(&fx, "after the merge");
	/* "junk" is y's spelling of x's Junk: not a keyword of its own */
	cr_assert_eq(fx.keyword_count, 4, "keywords %u", fx.keyword_count);
	free(out);

	/* merged once: nothing more to add */
	sdboxmerge_records(&fx, &fy, pairs, 4, &r);
	cr_assert_eq(r.mails, 0);
	cr_assert_null(r.records);
	sdboxflags_free(&fx);
	sdboxflags_free(&fy);
	close(fd);
}

/* ---- damaged and hostile files, made by hand */

struct bytes {
	unsigned char d[4096];
	size_t n;
};

static void put(struct bytes *b, const void *p, size_t len)
{
	cr_assert_leq(b->n + len, sizeof(b->d));
	memcpy(b->d + b->n, p, len);
	b->n += len;
}

static void put32(struct bytes *b, uint32_t v)
{
	put(b, &v, 4);
}

/* a log header: version 1.3, 40 bytes, file_seq 1, this machine's order
   (foreign: the other) */
static void log_header(struct bytes *b, bool foreign)
{
	unsigned char h[DOVECOTFMT_LOG_HEADER_SIZE] = { 1, 3, 40, 0 };

	h[DOVECOTFMT_LOG_FILE_SEQ] = 1;
	h[DOVECOTFMT_LOG_COMPAT_FLAGS] = dovecotfmt_compat_flags() ^
		(foreign ? 1 : 0);
	b->n = 0;
	put(b, h, sizeof(h));
}

static void log_rec(struct bytes *b, uint32_t type, const void *body,
		    size_t len)
{
	unsigned char hdr[DOVECOTFMT_RECORD_HEADER_SIZE];

	dovecotfmt_rec_header(hdr, type, len);
	put(b, hdr, sizeof(hdr));
	put(b, body, len);
}

/* APPEND of uids 1..count, flags \Seen */
static void log_appends(struct bytes *b, uint32_t count)
{
	struct bytes body = { .n = 0 };

	for (uint32_t uid = 1; uid <= count; uid++) {
		put32(&body, uid);
		put32(&body, 0x08);
	}
	log_rec(b, DOVECOTFMT_APPEND, body.d, body.n);
}

static void log_flags(struct bytes *b, uint32_t uid1, uint32_t uid2,
		      uint8_t add, uint8_t remove)
{
	unsigned char e[12] = { 0 };

	memcpy(e, &uid1, 4);
	memcpy(e + 4, &uid2, 4);
	e[8] = add;
	e[9] = remove;
	log_rec(b, DOVECOTFMT_FLAG_UPDATE, e, sizeof(e));
}

/* KEYWORD_UPDATE adding name (name_size as given) to uid1..uid2 */
static void log_keyword(struct bytes *b, const char *name, uint16_t name_size,
			uint32_t uid1, uint32_t uid2)
{
	struct bytes body = { .n = 0 };
	unsigned char h[4] = { DOVECOTFMT_MODIFY_ADD, 0 };
	size_t len = strlen(name);

	memcpy(h + 2, &name_size, 2);
	put(&body, h, 4);
	put(&body, name, len);
	while (body.n % 4 != 0)
		put(&body, "", 1);
	put32(&body, uid1);
	put32(&body, uid2);
	log_rec(b, DOVECOTFMT_KEYWORD_UPDATE, body.d, body.n);
}

static struct sdboxflags parse_log(const struct bytes *log)
{
	struct sdboxflags f;

	sdboxflags_parse(&f, NULL, 0, NULL, 0, log->d, log->n);
	return f;
}

static uint8_t flags_of(const struct sdboxflags *f, uint32_t uid)
{
	const struct sdboxflags_mail *m = sdboxflags_find(f, uid);

	cr_assert_not_null(m, "uid %u", uid);
	return m->flags;
}

Test(sdbox_flags, a_range_past_every_uid_and_a_bad_range)
{
	struct bytes log;
	struct sdboxflags f;

	log_header(&log, false);
	log_appends(&log, 3);
	log_flags(&log, 1, UINT32_MAX, 0x02, 0);	/* \Flagged on all */
	log_flags(&log, 3, 2, 0x01, 0);		/* uid1 > uid2: nothing */
	log_flags(&log, 0, 1, 0x10, 0);		/* uid 0: nothing */
	log_flags(&log, 2, 2, 0xe0, 0x08);	/* not mail flags: dropped */
	f = parse_log(&log);
	cr_assert_eq(f.count, 3);
	cr_assert_eq(flags_of(&f, 1), 0x0a);
	cr_assert_eq(flags_of(&f, 2), 0x02);
	cr_assert_eq(flags_of(&f, 3), 0x0a);
	sdboxflags_free(&f);
}

Test(sdbox_flags, keywords_bad_names_and_spellings)
{
	struct bytes log;
	struct sdboxflags f;
	int junk;

	log_header(&log, false);
	log_appends(&log, 2);
	log_keyword(&log, "Junk", 4, 1, 1);
	log_keyword(&log, "junk", 4, 2, 2);	/* the same keyword */
	log_keyword(&log, "a b", 3, 1, 2);	/* not an atom */
	log_keyword(&log, "x(y", 3, 1, 2);
	log_keyword(&log, "Long", 200, 1, 2);	/* name past the record */
	f = parse_log(&log);
	cr_assert_eq(f.keyword_count, 1);
	junk = sdboxflags_keyword_index(&f, "JUNK");
	cr_assert_eq(junk, 0);
	cr_assert(sdboxflags_has_keyword(sdboxflags_find(&f, 1), 0));
	cr_assert(sdboxflags_has_keyword(sdboxflags_find(&f, 2), 0));
	sdboxflags_free(&f);
}

Test(sdbox_flags, a_damaged_record_ends_the_log)
{
	struct bytes log;
	struct sdboxflags f;
	unsigned char bad[8] = { 0x01, 0x02, 0x03, 0x04, 0x04, 0, 0, 0 };
	uint32_t boundary = 4096;

	log_header(&log, false);
	log_appends(&log, 2);
	log_flags(&log, 1, 1, 0x02, 0);
	put(&log, bad, sizeof(bad));		/* size not in the encoding */
	log_flags(&log, 2, 2, 0x02, 0);
	f = parse_log(&log);
	cr_assert_eq(flags_of(&f, 1), 0x0a);
	cr_assert_eq(flags_of(&f, 2), 0x08);
	sdboxflags_free(&f);

	/* a transaction said longer than what is written: not read */
	log_header(&log, false);
	log_appends(&log, 2);
	log_rec(&log, DOVECOTFMT_BOUNDARY, &boundary, 4);
	log_flags(&log, 1, 2, 0x02, 0);
	f = parse_log(&log);
	cr_assert_eq(flags_of(&f, 1), 0x08);
	sdboxflags_free(&f);

	/* the other byte order: nothing */
	log_header(&log, true);
	log_appends(&log, 2);
	f = parse_log(&log);
	cr_assert_eq(f.count, 0);
	sdboxflags_free(&f);

	/* a record cut short at the end */
	log_header(&log, false);
	log_appends(&log, 2);
	log_flags(&log, 1, 2, 0x02, 0);
	log.n -= 4;
	f = parse_log(&log);
	cr_assert_eq(f.count, 2);
	cr_assert_eq(flags_of(&f, 1), 0x08);
	sdboxflags_free(&f);
}

/* an index header (records of 8 bytes: uid, flags, padding) */
static void index_header(struct bytes *b, uint32_t header_size,
			 uint32_t messages)
{
	unsigned char h[120] = { DOVECOTFMT_INDEX_MAJOR_VERSION, 3, 120, 0 };
	uint32_t rsize = 8;

	memcpy(h + DOVECOTFMT_INDEX_HEADER_SIZE, &header_size, 4);
	memcpy(h + DOVECOTFMT_INDEX_RECORD_SIZE, &rsize, 4);
	h[DOVECOTFMT_INDEX_COMPAT_FLAGS] = dovecotfmt_compat_flags();
	memcpy(h + DOVECOTFMT_INDEX_MESSAGES_COUNT, &messages, 4);
	b->n = 0;
	put(b, h, sizeof(h));
}

Test(sdbox_flags, index_bounds)
{
	struct bytes idx;
	struct sdboxflags f;

	/* more messages said than there are records: those there */
	index_header(&idx, 120, UINT32_MAX);
	put32(&idx, 7);
	put32(&idx, 0x02);
	put32(&idx, 9);
	put32(&idx, 0x0a);
	sdboxflags_parse(&f, idx.d, idx.n, NULL, 0, NULL, 0);
	cr_assert_eq(f.count, 2);
	cr_assert_eq(flags_of(&f, 9), 0x0a);
	sdboxflags_free(&f);

	/* a header said longer than the file: not an index */
	index_header(&idx, 100000, 1);
	put32(&idx, 7);
	put32(&idx, 0x02);
	sdboxflags_parse(&f, idx.d, idx.n, NULL, 0, NULL, 0);
	cr_assert_eq(f.count, 0);
	sdboxflags_free(&f);

	/* an extension whose name runs past the header: records still read */
	index_header(&idx, 120 + 16, 1);
	put32(&idx, 0);
	put32(&idx, 0);
	put32(&idx, 0);
	put32(&idx, 0xffff0000U);	/* name_size 65535 */
	put32(&idx, 7);
	put32(&idx, 0x02);
	sdboxflags_parse(&f, idx.d, idx.n, NULL, 0, NULL, 0);
	cr_assert_eq(f.count, 1);
	cr_assert_eq(flags_of(&f, 7), 0x02);
	sdboxflags_free(&f);

	/* cut inside the header */
	sdboxflags_parse(&f, idx.d, 40, NULL, 0, NULL, 0);
	cr_assert_eq(f.count, 0);
	sdboxflags_free(&f);
}

/* the rebuild mark putback.c appends is the record dovecotfmt.h builds:
   a header update (EXTERNAL) setting FSCKD in the index header's flags */
Test(sdbox_flags, the_rebuild_mark_is_a_header_update_of_the_flags)
{
	unsigned char rec[PUTBACK_SDBOX_FSCKD_SIZE];
	uint16_t off = DOVECOTFMT_INDEX_FLAGS, len = 4;
	uint32_t flags = DOVECOTFMT_INDEX_FLAG_FSCKD;
	struct dovecotfmt_log log;
	struct dovecotfmt_rec r;
	struct bytes b;

	dovecotfmt_rec_header(rec, DOVECOTFMT_EXTERNAL |
			      DOVECOTFMT_HEADER_UPDATE, 8);
	memcpy(rec + 8, &off, 2);
	memcpy(rec + 10, &len, 2);
	memcpy(rec + 12, &flags, 4);
	cr_assert_arr_eq(rec, putback_sdbox_fsckd, sizeof(rec));
	/* and reads back as that one record */
	log_header(&b, false);
	put(&b, putback_sdbox_fsckd, PUTBACK_SDBOX_FSCKD_SIZE);
	cr_assert_eq(PUTBACK_SDBOX_LOG_HDR_SIZE, DOVECOTFMT_LOG_HEADER_SIZE);
	cr_assert_eq(dovecotfmt_log_open(&log, b.d, b.n), 0);
	cr_assert_eq(dovecotfmt_log_next(&log, &r), 1);
	cr_assert_eq(r.type, DOVECOTFMT_EXTERNAL | DOVECOTFMT_HEADER_UPDATE);
	cr_assert_eq(r.size, 8);
	cr_assert_eq(dovecotfmt_log_next(&log, &r), 0);
}

/* hostile files cost bounded work: mails out of UID order end the
   index's records, and ranges over every mail again and again stop at a
   budget; either way the state says it is incomplete (a merge leaves it
   alone) */
Test(sdbox_flags, hostile_files_cost_bounded_work)
{
	static struct bytes idx, log;
	struct sdboxflags f;
	unsigned char *big;
	size_t n = 0, mails = 100000, ranges = 1000;

	index_header(&idx, 120, 4);
	put32(&idx, 9);
	put32(&idx, 0x02);
	put32(&idx, 7);		/* below 9: damaged from here */
	put32(&idx, 0x02);
	put32(&idx, 8);
	put32(&idx, 0x02);
	sdboxflags_parse(&f, idx.d, idx.n, NULL, 0, NULL, 0);
	cr_assert_eq(f.count, 1);
	cr_assert(f.incomplete);
	sdboxflags_free(&f);

	/* 100,000 mails, then 1,000 ranges {1, 2^32 - 1}: 10^8 steps
	   without the budget */
	big = malloc(DOVECOTFMT_LOG_HEADER_SIZE + 16 + mails * 8 + ranges * 12);
	cr_assert_not_null(big);
	log_header(&log, false);
	memcpy(big, log.d, log.n);
	n = log.n;
	dovecotfmt_rec_header(big + n, DOVECOTFMT_APPEND, mails * 8);
	n += DOVECOTFMT_RECORD_HEADER_SIZE;
	for (uint32_t uid = 1; uid <= mails; uid++, n += 8) {
		memcpy(big + n, &uid, 4);
		memset(big + n + 4, 0, 4);
	}
	dovecotfmt_rec_header(big + n, DOVECOTFMT_FLAG_UPDATE, ranges * 12);
	n += DOVECOTFMT_RECORD_HEADER_SIZE;
	for (size_t i = 0; i < ranges; i++, n += 12) {
		uint32_t one = 1, max = UINT32_MAX;

		memset(big + n, 0, 12);
		memcpy(big + n, &one, 4);
		memcpy(big + n + 4, &max, 4);
		big[n + 8] = (unsigned char)(i % 2 == 0 ? 0x02 : 0);
		big[n + 9] = (unsigned char)(i % 2 == 0 ? 0 : 0x02);
	}
	sdboxflags_parse(&f, NULL, 0, NULL, 0, big, n);
	cr_assert_eq(f.count, mails);
	cr_assert(f.incomplete);
	cr_assert_leq(f.work, 64U * 1024 * 1024 + 1);
	sdboxflags_free(&f);
	free(big);
}
