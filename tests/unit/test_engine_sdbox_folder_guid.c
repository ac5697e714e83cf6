/* test_engine_sdbox_folder_guid.c: an sdbox folder's first mail names the
 * folder (mailstore_folder_guid()) by its Dovecot mailbox GUID, which
 * Dovecot keeps in the index's "dbox-hdr" extension (dovecot.index, and
 * the log alone for a new folder: dovecotidx_sdbox_guid()), so that the
 * two writers of a split brain, each storing the first mail of a folder
 * that was empty when they split, give it one GUID (before: a random one
 * each).  The GUID read is the one Dovecot's own imap reports (STATUS
 * X-GUID; tests/fixtures/sdbox-imap.sh); a copy of a folder's files does
 * not give its GUID to a second folder. */
#include "helper-objstore.h"
#include "bundle.h"
#include "dovecotidx.h"
#include "ids.h"
#include "mailstore.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define USER "user@example.com"
#define ROOT USER "/sdbox"
#define MAILBOXES ROOT "/mailboxes"

static char *tmp;
static int meta_fd = -1;

static void init(void)
{
	tmp = objtest_mkdtemp("sdbox-folder-guid");
	cr_assert_not_null(tmp);
	/* Dovecot's process (user nobody) goes through it */
	cr_assert_eq(chmod(tmp, 0755), 0);
	meta_fd = objtest_mkdir_open(tmp, "meta");
	cr_assert_eq(fchmod(meta_fd, 0755), 0);
	cr_assert_eq(mkdirat(meta_fd, USER, 0755), 0);
}

static void fini(void)
{
	close(meta_fd);
	objtest_rm_rf(tmp);
	free(tmp);
}

TestSuite(sdbox_folder_guid, .init = init, .fini = fini, .timeout = 60);

/* Dovecot's imap on the user's sdbox root runs commands; its replies
   (malloc()ed) */
static char *imap(bool index, const char *commands)
{
	const char *src = getenv("OBOXFS_SOURCE_DIR");
	char script[4096], dir[4096], outpath[4096];
	int in[2], status, fd;
	pid_t pid;

	cr_assert_not_null(src, "OBOXFS_SOURCE_DIR is not set (run the test "
			   "through ctest)");
	snprintf(script, sizeof(script), "%s/tests/fixtures/sdbox-imap.sh",
		 src);
	snprintf(dir, sizeof(dir), "%s/meta/" ROOT, tmp);
	snprintf(outpath, sizeof(outpath), "%s/imap.out", tmp);
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
	char *out = calloc(1, 65536);

	cr_assert_not_null(f);
	cr_assert_not_null(out);
	(void)fread(out, 1, 65535, f);
	fclose(f);
	cr_assert_null(strstr(out, "Error"), "Dovecot: %s", out);
	return out;
}

/* the X-GUID Dovecot reports for mailbox */
static void dovecot_guid(const char *mailbox, char guid_r[33])
{
	char cmd[256], *out, *p;

	snprintf(cmd, sizeof(cmd), "s STATUS %s (X-GUID)\r\nl LOGOUT\r\n",
		 mailbox);
	out = imap(false, cmd);
	p = strstr(out, "(X-GUID ");
	cr_assert_not_null(p, "%s", out);
	memcpy(guid_r, p + 8, 32);
	guid_r[32] = '\0';
	cr_assert(ids_is_hex_id(guid_r), "%s", out);
	free(out);
}

static int dbox_dir(const char *folder)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), MAILBOXES "/%s/dbox-Mails", folder);
	fd = openat(meta_fd, path, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0, "%s", path);
	return fd;
}

/* the folder's GUID as its first mail makes it (mailstore.c) */
static void first_mail_guid(const char *folder, char guid_r[33])
{
	struct mailstore *ms = mailstore_init(NULL, NULL, NULL, meta_fd);
	char path[512];

	cr_assert_not_null(ms);
	snprintf(path, sizeof(path), MAILBOXES "/%s", folder);
	cr_assert_eq(mailstore_folder_guid(ms, path, guid_r), 0);
	mailstore_deinit(&ms);
}

#define APPEND "a APPEND INBOX {16+}\r\nSubject: one\r\n\r\n\r\n"

ParameterizedTestParameters(sdbox_folder_guid, the_guid_dovecot_reports)
{
	static bool index[] = { false, true };

	return cr_make_param_array(bool, index, 2);
}

ParameterizedTest(bool *index, sdbox_folder_guid, the_guid_dovecot_reports)
{
	char want[33], got[33], first[33];
	struct stat st;
	int fd;

	/* with "index" and the STOREs, Dovecot writes dovecot.index */
	free(imap(*index, APPEND "s SELECT INBOX\r\n"
		  "f1 STORE 1 +FLAGS (\\Seen)\r\nn NOOP\r\n"
		  "f2 STORE 1 +FLAGS (\\Flagged)\r\nn2 NOOP\r\nl LOGOUT\r\n"));
	dovecot_guid("INBOX", want);
	fd = dbox_dir("INBOX");
	cr_assert_eq(fstatat(fd, "dovecot.index", &st, 0) == 0, *index);
	cr_assert_eq(dovecotidx_sdbox_guid(fd, got), 1);
	close(fd);
	cr_assert_str_eq(got, want);
	first_mail_guid("INBOX", first);
	cr_assert_str_eq(first, want);
}

/* a folder made by CREATE, no mail yet: its log alone says it */
Test(sdbox_folder_guid, a_new_empty_folder)
{
	char want[33], got[33];
	int fd;

	free(imap(false, "c CREATE Projects\r\nl LOGOUT\r\n"));
	dovecot_guid("Projects", want);
	fd = dbox_dir("Projects");
	cr_assert_eq(dovecotidx_sdbox_guid(fd, got), 1);
	close(fd);
	cr_assert_str_eq(got, want);
}

/* cp -r of a folder's files: the copy does not take the GUID */
Test(sdbox_folder_guid, a_copy_gets_a_guid_of_its_own)
{
	char want[33], inbox[33], copy[33], cmd[1024];

	free(imap(false, APPEND "l LOGOUT\r\n"));
	dovecot_guid("INBOX", want);
	snprintf(cmd, sizeof(cmd), "cp -r '%s/meta/" MAILBOXES "/INBOX' "
		 "'%s/meta/" MAILBOXES "/Copy'", tmp, tmp);
	cr_assert_eq(system(cmd), 0);
	first_mail_guid("INBOX", inbox);
	cr_assert_str_eq(inbox, want);
	first_mail_guid("Copy", copy);
	cr_assert_str_neq(copy, want);
}

/* no index files, or nothing of dbox-hdr in them: none */
Test(sdbox_folder_guid, none_without_index_files)
{
	static const unsigned char not_a_log[64] = { 1, 3, 40, 0 };
	char guid[33];
	int fd;

	cr_assert_eq(mkdirat(meta_fd, ROOT, 0755), 0);
	cr_assert_eq(mkdirat(meta_fd, MAILBOXES, 0755), 0);
	cr_assert_eq(mkdirat(meta_fd, MAILBOXES "/Empty", 0755), 0);
	cr_assert_eq(mkdirat(meta_fd, MAILBOXES "/Empty/dbox-Mails", 0755), 0);
	fd = dbox_dir("Empty");
	cr_assert_eq(dovecotidx_sdbox_guid(fd, guid), 0);
	close(fd);
	cr_assert_eq(dovecotidx_sdbox_guid_parse(NULL, 0, NULL, 0, not_a_log,
						 sizeof(not_a_log), guid), 0);
}
