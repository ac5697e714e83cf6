/* test_fs_inode_table_reused_numbers.c: the inode table (fs/inode.c)
 * keeps a directory the kernel knows when a caller's stat of a file is
 * older than the table.  An unlink or a rename frees a file's inode
 * number after the caller's fstatat(); a mkdir in another FUSE worker may
 * get that number before the caller tells the table the name is gone
 * (inode_name_gone()) or moved (inode_renamed()).  The table must not take
 * the directory out for it: a later lookup would give the kernel a new
 * node id for a directory it knows under the old one, with the children
 * it has under it, and the kernel fails the splice with ESTALE (seen in
 * test_fs_concurrency: mkdir of a new folder's tmp/ failed so).  A stat of
 * a file whose number a directory got is forged here: (dev, ino) of the
 * directory, the type of a file. */
#include "test_engine.h"
#include "fs.h"

#include <criterion/parameterized.h>

/* the table function told of the file (a parameter holds no pointer:
   criterion runs each case in a process of its own) */
enum stale_caller { NAME_GONE, RENAMED };

struct table_case {
	enum stale_caller caller;
};

static const char *const caller_names[] = {
	[NAME_GONE] = "inode_name_gone",
	[RENAMED] = "inode_renamed",
};

static struct obox *obox;
static struct oboxfs fs;

static void setup(void)
{
	eng_init();
	obox = eng_open("cache");
	eng_make_user(obox);
	memset(&fs, 0, sizeof(fs));
	fs.obox = obox;
	fs.meta_fd = obox_meta_fd(obox);
	fs.meta_path = obox_meta_path(obox);
	fs.meta_path_len = strlen(fs.meta_path);
	fs.mount_fd = open(fs.meta_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fs.mount_fd, 0);
	cr_assert_eq(inode_table_init(&fs), 0);
	fs.root.fd = fs.meta_fd;
	fs.root.is_dir = true;
	fs.root.nlookup = 2;
	fs.timeout = 1.0;
}

static void teardown(void)
{
	inode_table_deinit(&fs);
	close(fs.mount_fd);
	obox_deinit(&obox);
	eng_fini();
}

/* the node id of name in parent, looked up as the kernel would */
static struct oinode *lookup(struct oinode *parent, const char *name)
{
	struct fuse_entry_param e;
	int err = inode_lookup(&fs, parent, name, false, &e);

	cr_assert_eq(err, 0, "lookup(%s): %s", name, strerror(err));
	return (struct oinode *)(uintptr_t)e.ino;
}

ParameterizedTestParameters(inode_table, a_stale_file_stat_keeps_a_directory)
{
	static struct table_case cases[] = {
		{ NAME_GONE },
		{ RENAMED },
	};

	return cr_make_param_array(struct table_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct table_case *c, inode_table,
		  a_stale_file_stat_keeps_a_directory,
		  .init = setup, .fini = teardown)
{
	struct oinode *user = lookup(&fs.root, ENG_USER);
	struct oinode *maildir = lookup(user, "Maildir");
	struct oinode *tmp = lookup(maildir, "tmp");
	struct stat file_st;

	cr_assert(maildir->is_dir);
	/* the stat of a file that had the directory's inode number */
	memset(&file_st, 0, sizeof(file_st));
	file_st.st_dev = maildir->dev;
	file_st.st_ino = maildir->ino;
	file_st.st_mode = S_IFREG | 0600;
	file_st.st_nlink = 1;
	const char *caller = caller_names[c->caller];

	if (c->caller == NAME_GONE)
		inode_name_gone(&fs, &file_st, user, "1700000000.M1P1.host");
	else
		inode_renamed(&fs, &file_st, user, "1700000000.M1P1.host");

	/* the directory keeps its node id, its children theirs */
	cr_assert_eq(inode_find(&fs, maildir->dev, maildir->ino), maildir,
		     "%s took the directory out of the table", caller);
	cr_assert_eq(lookup(user, "Maildir"), maildir,
		     "after %s the directory got another node id", caller);
	cr_assert_eq(lookup(maildir, "tmp"), tmp);
	inode_unref(&fs, tmp, 2);
	inode_unref(&fs, maildir, 2);
	inode_unref(&fs, user, 1);
}
