/* make-seeds: writes the binary seeds of fuzz/corpus/ (real bundles made
 * with the bundle encoder): make-seeds CORPUS_DIR.  Into bundle_decode/:
 * bases and diffs, plain and packed; into bundle_apply/: base + diff pairs
 * in fuzz_bundle_apply's input format.  Ids and times are fixed, so the
 * seeds are the same at every run. */
#include "bundle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#define KEY_A "b5/899/user@example.com/mailboxes/" \
	"00d7d12ea08a3153175e0000dfbea952/d88ff1001d4bf753a1b800001accfe22"
#define KEY_B "b5/899/user@example.com/mailboxes/" \
	"00d7d12ea08a3153175e0000dfbea952/c96d802b5d4df75307bb00001accfe22"
#define KEY_C "b5/899/user@example.com/mailboxes/" \
	"00d7d12ea08a3153175e0000dfbea952/e96d802b5d4df75307bb00001accfe23"

static const char *dir;

static void fail(const char *what, const char *error)
{
	fprintf(stderr, "make-seeds: %s: %s\n", what, error);
	exit(1);
}

static void add(struct bundle_tree *tree, enum bundle_entry_type type,
		const char *path, size_t size, unsigned int seed,
		const char *key, uint32_t link_id)
{
	struct bundle_entry e = {
		.path = (char *)path, .type = type, .mode = 0600,
		.mtime_sec = 1400000000, .mtime_nsec = 5, .size = size,
		.key = (char *)key, .link_id = link_id,
	};
	const char *error;

	if (type == BUNDLE_ENTRY_FILE && size > 0) {
		e.data = malloc(size);
		for (size_t i = 0; i < size; i++)
			e.data[i] = (unsigned char)(seed * 31 + i * 7);
	}
	if (type == BUNDLE_ENTRY_SYMLINK) {
		e.data = (unsigned char *)strdup("../target");
		e.size = strlen("../target");
	}
	if (type == BUNDLE_ENTRY_CHARDEV || type == BUNDLE_ENTRY_BLOCKDEV)
		e.rdev = makedev(1, 3);
	if (type == BUNDLE_ENTRY_DIR) {
		e.mode = 0700;
		if (seed != 0)
			snprintf(e.guid, sizeof(e.guid),
				 "00d7d12ea08a3153175e0000dfbea9%02x", seed);
	}
	if (bundle_tree_add(tree, &e, &error) < 0)
		fail(path, error);
	free(e.data);
}

static struct bundle_entry *entry(struct bundle_tree *tree, const char *path)
{
	struct bundle_entry *e = (struct bundle_entry *)
		bundle_tree_find(tree, path);

	if (e == NULL)
		fail(path, "missing");
	return e;
}

static void info_init(struct bundle_info *info, uint32_t secs, uint32_t seq,
		      unsigned char id_byte)
{
	memset(info, 0, sizeof(*info));
	info->secs = secs;
	info->usecs = 5;
	info->seq = seq;
	info->mails_secs = secs - 100;
	info->mails_usecs = 7;
	memset(info->id, id_byte, sizeof(info->id));
}

static void write_file(const char *target, const char *name,
		       const unsigned char *data, size_t size,
		       const unsigned char *data2, size_t size2, bool pair)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	f = fopen(path, "w");
	if (f == NULL)
		fail(path, "fopen() failed");
	if (pair) {
		unsigned char len[4] = { (unsigned char)size,
			(unsigned char)(size >> 8),
			(unsigned char)(size >> 16),
			(unsigned char)(size >> 24) };

		fwrite(len, 1, 4, f);
	}
	fwrite(data, 1, size, f);
	if (data2 != NULL)
		fwrite(data2, 1, size2, f);
	if (fclose(f) != 0)
		fail(path, "write failed");
}

static void write_bundle(const char *name, const unsigned char *data,
			 size_t size)
{
	unsigned char *packed = malloc(size);
	char pname[256];
	size_t psize = size;

	write_file("bundle_decode", name, data, size, NULL, 0, false);
	memcpy(packed, data, size);
	bundle_pack(&packed, &psize);
	snprintf(pname, sizeof(pname), "%s.zst", name);
	write_file("bundle_decode", pname, packed, psize, NULL, 0, false);
	free(packed);
}

/* a folder's index tree */
static struct bundle_tree *folder_tree(void)
{
	struct bundle_tree *tree = bundle_tree_new();

	add(tree, BUNDLE_ENTRY_FILE, "dovecot.index", 300, 1, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "dovecot.index.cache", 1000, 2, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "dovecot.index.log", 500, 3, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "dovecot-uidlist", 40, 4, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "old.file", 10, 5, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "f", 10, 6, NULL, 7);
	add(tree, BUNDLE_ENTRY_FILE, "g", 10, 6, NULL, 7);
	add(tree, BUNDLE_ENTRY_DIR, "cur", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_STUB, "cur/a:2,S", 1234, 0, KEY_A, 0);
	add(tree, BUNDLE_ENTRY_STUB, "cur/b:2,", 99, 0, KEY_B, 0);
	add(tree, BUNDLE_ENTRY_DIR, "new", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_DIR, "tmp", 0, 0, NULL, 0);
	return tree;
}

/* a user's own tree, special files included */
static struct bundle_tree *user_tree(void)
{
	struct bundle_tree *tree = bundle_tree_new();

	add(tree, BUNDLE_ENTRY_DIR, "Maildir", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_DIR, "Maildir/.Sent", 0, 0x52, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "Maildir/subscriptions", 20, 8, NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "Maildir/dovecot.list.index", 200, 9,
	    NULL, 0);
	add(tree, BUNDLE_ENTRY_FILE, "Maildir/dovecot-keywords", 0, 0, NULL,
	    0);
	add(tree, BUNDLE_ENTRY_SYMLINK, ".dovecot.sieve", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_FIFO, "fifo", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_SOCKET, "socket", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_CHARDEV, "null", 0, 0, NULL, 0);
	add(tree, BUNDLE_ENTRY_BLOCKDEV, "blk", 0, 0, NULL, 0);
	return tree;
}

static struct bundle_tree *clone(const struct bundle_tree *tree)
{
	struct bundle_tree *copy = bundle_tree_new();
	const char *error;

	for (size_t i = 0; i < tree->count; i++) {
		if (bundle_tree_add(copy, &tree->entries[i], &error) < 0)
			fail("clone", error);
	}
	return copy;
}

static void make_diffs(const char *name, struct bundle_tree *tree,
		       uint32_t secs, unsigned char id_byte, bool folder)
{
	struct bundle_info info;
	struct bundle_tree *changed;
	unsigned char *base, *diff;
	size_t base_size, diff_size;
	const char *error;
	char fname[256];

	info_init(&info, secs, 0, id_byte);
	if (bundle_encode_base(tree, &info, &base, &base_size, &error) < 0)
		fail(name, error);
	snprintf(fname, sizeof(fname), "%s-base", name);
	write_bundle(fname, base, base_size);

	for (uint32_t seq = 1; seq <= 3; seq++) {
		struct bundle_entry *e;

		/* folder: 1: an append, a new stub; 2: a patched file, a
		   hard link broken; 3: both.  user: an append, a mode, 2
		   and 3 a new directory */
		changed = clone(tree);
		if (folder) {
			if (seq != 2) {
				e = entry(changed, "dovecot.index.log");
				e->data = realloc(e->data, e->size + 100);
				memset(e->data + e->size, 'x', 100);
				e->size += 100;
				add(changed, BUNDLE_ENTRY_STUB, "new/c", 77,
				    0, KEY_C, 0);
			}
			if (seq != 1) {
				e = entry(changed, "dovecot.index.cache");
				e->data[10] ^= 0xff;
				e->data[900] ^= 0xff;
				e->mtime_sec++;
				e = entry(changed, "g");
				e->link_id = 0;
			}
		} else {
			e = entry(changed, "Maildir/subscriptions");
			e->data = realloc(e->data, e->size + 6);
			memcpy(e->data + e->size, "Trash\n", 6);
			e->size += 6;
			e = entry(changed, ".dovecot.sieve");
			e->mode = 0777;
			if (seq > 1)
				add(changed, BUNDLE_ENTRY_DIR,
				    "Maildir/.Trash", 0, 0x53, NULL, 0);
		}
		changed->is_base = false;
		changed->checked = false;
		info_init(&info, secs + seq, seq, (unsigned char)(id_byte + seq));
		if (bundle_diff(tree, changed, &info, &diff, &diff_size,
				&error) < 0)
			fail(name, error);
		snprintf(fname, sizeof(fname), "%s-diff%u", name, seq);
		write_bundle(fname, diff, diff_size);
		write_file("bundle_apply", fname, base, base_size, diff,
			   diff_size, true);
		free(diff);
		bundle_tree_free(&changed);
	}
	free(base);
}

int main(int argc, char **argv)
{
	struct bundle_tree *tree;
	struct bundle_info info;
	unsigned char *data;
	size_t size;
	const char *error;

	if (argc != 2) {
		fprintf(stderr, "usage: make-seeds CORPUS_DIR\n");
		return 2;
	}
	dir = argv[1];

	/* an empty tree: the smallest valid base */
	tree = bundle_tree_new();
	info_init(&info, 1500000000, 0, 0x11);
	if (bundle_encode_base(tree, &info, &data, &size, &error) < 0)
		fail("empty", error);
	write_bundle("empty-base", data, size);
	free(data);
	bundle_tree_free(&tree);

	tree = folder_tree();
	make_diffs("folder", tree, 1500000100, 0x22, true);
	bundle_tree_free(&tree);

	tree = user_tree();
	make_diffs("user", tree, 1500000200, 0x33, false);
	bundle_tree_free(&tree);
	return 0;
}
