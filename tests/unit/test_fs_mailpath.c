/* test_fs_mailpath.c: classification of tree paths (mailpath_classify()):
 * which entries are mails, which directory is their folder, which part is
 * the user and the path relative to the user directory. */
#include "mailpath.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <string.h>

/* arrays, not pointers: criterion runs each case in a new process */
struct classify_case {
	char dir[64];
	char name[32];
	bool is_mail;
	char user[16];		/* expected user ("" = root) */
	char folder[48];	/* expected folder dir if is_mail */
	char user_dir[48];	/* expected dir relative to the user */
};

struct dir_case {
	char dir[32];
};

static void init(void) {}
static void fini(void) {}
TestSuite(fs_mailpath, .init = init, .fini = fini);

ParameterizedTestParameters(fs_mailpath, classify)
{
	static struct classify_case cases[] = {
		/* maildir */
		{ "u@x/Maildir/cur", "1.M1P2.host,S=5:2,S", true, "u@x",
		  "u@x/Maildir", "Maildir/cur" },
		{ "u@x/Maildir/new", "1.M1P2.host", true, "u@x",
		  "u@x/Maildir", "Maildir/new" },
		{ "u@x/Maildir/.Sent/cur", "m", true, "u@x",
		  "u@x/Maildir/.Sent", "Maildir/.Sent/cur" },
		{ "u@x/cur", "m", true, "u@x", "u@x", "cur" },
		{ "u@x/Maildir/tmp", "m", false, "u@x", "", "Maildir/tmp" },
		{ "u@x/Maildir", "dovecot-uidlist", false, "u@x", "",
		  "Maildir" },
		{ "u@x/Maildir", "cur", false, "u@x", "", "Maildir" },
		{ "u@x/Maildir/curx", "m", false, "u@x", "", "Maildir/curx" },
		{ "u@x/Maildir/xcur", "m", false, "u@x", "", "Maildir/xcur" },
		/* sdbox */
		{ "u@x/sdbox/mailboxes/INBOX/dbox-Mails", "u.1", true, "u@x",
		  "u@x/sdbox/mailboxes/INBOX", "sdbox/mailboxes/INBOX/dbox-Mails" },
		{ "u@x/sdbox/mailboxes/INBOX/dbox-Mails", "u.123456", true,
		  "u@x", "u@x/sdbox/mailboxes/INBOX",
		  "sdbox/mailboxes/INBOX/dbox-Mails" },
		{ "u@x/sdbox/mailboxes/INBOX/dbox-Mails",
		  ".temp.host.123.abc", false, "u@x", "",
		  "sdbox/mailboxes/INBOX/dbox-Mails" },
		{ "u@x/sdbox/mailboxes/INBOX/dbox-Mails", "dovecot.index",
		  false, "u@x", "", "sdbox/mailboxes/INBOX/dbox-Mails" },
		{ "u@x/sdbox/mailboxes/INBOX/dbox-Mails", "u.", false, "u@x",
		  "", "sdbox/mailboxes/INBOX/dbox-Mails" },
		{ "u@x/sdbox/mailboxes/INBOX/dbox-Mails", "u.1a", false, "u@x",
		  "", "sdbox/mailboxes/INBOX/dbox-Mails" },
		{ "u@x/sdbox/mailboxes/INBOX", "u.1", false, "u@x", "",
		  "sdbox/mailboxes/INBOX" },
		/* the user directory and the root hold no mails */
		{ "cur", "m", false, "cur", "", "" },
		{ "dbox-Mails", "u.1", false, "dbox-Mails", "", "" },
		{ "u@x", "m", false, "u@x", "", "" },
		{ "", "u@x", false, "", "", "" },
	};
	return cr_make_param_array(struct classify_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct classify_case *c, fs_mailpath, classify)
{
	struct mailpath mp;

	cr_assert_eq(mailpath_classify(c->dir, c->name, &mp), 0);
	cr_assert_eq(mp.is_mail, c->is_mail, "%s / %s", c->dir, c->name);
	cr_assert_eq(mp.user_len, strlen(c->user), "%s", c->dir);
	cr_assert_eq(strncmp(c->dir, c->user, mp.user_len), 0);
	cr_assert_str_eq(mp.user_dir, c->user_dir);
	if (c->is_mail) {
		cr_assert_eq(mp.folder_len, strlen(c->folder));
		cr_assert_eq(strncmp(c->dir, c->folder, mp.folder_len), 0);
	}
}

ParameterizedTestParameters(fs_mailpath, non_canonical_dirs)
{
	static struct dir_case dirs[] = {
		{ "/u@x/cur" }, { "u@x/cur/" }, { "u@x//cur" }, { "u@x/./cur" }, { "u@x/../cur" },
		{ ".." }, { "." }, { "u@x/.." },
	};
	return cr_make_param_array(struct dir_case, dirs,
				   sizeof(dirs) / sizeof(dirs[0]));
}

ParameterizedTest(struct dir_case *c, fs_mailpath, non_canonical_dirs)
{
	struct mailpath mp;

	errno = 0;
	cr_assert_eq(mailpath_classify(c->dir, "m", &mp), -1, "%s", c->dir);
	cr_assert_eq(errno, EINVAL);
}

struct union_case {
	char a[64], b[64];
	int ret;
	char out[64];
};

ParameterizedTestParameters(fs_mailpath, maildir_flags_union)
{
	static struct union_case cases[] = {
		{ "m:2,FS", "m:2,R", 1, "m:2,FRS" },
		{ "m:2,R", "m:2,FS", 1, "m:2,FRS" },
		{ "m", "m:2,S", 1, "m:2,S" },
		{ "m:2,", "m:2,T", 1, "m:2,T" },
		/* nothing b adds: a unchanged */
		{ "m:2,RS", "m:2,S", 0, "m:2,RS" },
		{ "m:2,S", "m", 0, "m:2,S" },
		{ "m", "m", 0, "m" },
		/* keyword letters too (b's mapped to a's file by the
		   caller) */
		{ "m:2,Sa", "m:2,Fb", 1, "m:2,FSab" },
		{ "m:2,S", "m:2,Sc", 1, "m:2,Sc" },
		{ "m:2,Sac", "m:2,c", 0, "m:2,Sac" },
		{ "m", "m:2,z", 1, "m:2,z" },
		/* one mail (one key) under two bases: a's is kept */
		{ "m:2,S", "n:2,S", 0, "m:2,S" },
		{ "m1:2,S", "m:2,FS", 1, "m1:2,FS" },
		{ "1.M1P1.h", "1.M1P1.h,S=5,W=6:2,Sa", 1, "1.M1P1.h:2,Sa" },
		/* not maildir flags */
		{ "m:1,S", "m:2,S", -1, "" },
		{ "m:2,S", "m:2,S:x", -1, "" },
		{ "m:2,S!", "m:2,R", -1, "" },
		{ "m:2,S", "m:2,R\xff", -1, "" },
		{ ":2,S", ":2,R", -1, "" },
	};
	return cr_make_param_array(struct union_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct union_case *c, fs_mailpath, maildir_flags_union)
{
	char out[64];
	int ret = mailpath_maildir_flags_union(c->a, c->b, out, sizeof(out));

	cr_assert_eq(ret, c->ret, "%s + %s = %d", c->a, c->b, ret);
	if (ret >= 0)
		cr_assert_str_eq(out, c->out, "%s + %s", c->a, c->b);
}

Test(fs_mailpath, maildir_flags_union_too_small)
{
	char out[6];

	cr_assert_eq(mailpath_maildir_flags_union("m:2,S", "m:2,FR", out,
						  sizeof(out)), -1);
}

Test(fs_mailpath, maildir_same_flags)
{
	cr_assert(mailpath_maildir_same_flags("m", "m:2,"));
	cr_assert(mailpath_maildir_same_flags("m:2,SF", "m,S=5,W=6:2,FS"));
	cr_assert(mailpath_maildir_same_flags("m:2,Sa", "m:2,aS"));
	cr_assert_not(mailpath_maildir_same_flags("m:2,S", "m:2,"));
	cr_assert_not(mailpath_maildir_same_flags("m", "m:2,a"));
	cr_assert_not(mailpath_maildir_same_flags("m:2,S", "m:1,S"));
	cr_assert_not(mailpath_maildir_same_flags(":2,S", "m:2,S"));
}
