/* bundle.h: index bundles: an in-memory model of a directory tree (a
 * folder's index tree or a user's non-folder tree), reading it from and
 * writing it to disk, and encoding it as base and diff bundles (the format
 * is described in docs/bundle-format.md).  Bundles read back from the
 * store are untrusted: bundle_decode() validates every field.
 *
 * Errors: functions return 0 or -1; on -1 *error_r is set to a message
 * that stays valid until the next bundle call in the same thread.
 * Memory allocation failures abort (like Dovecot's i_malloc()).
 */
#ifndef OBOXFS_BUNDLE_H
#define OBOXFS_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* written: 3 for a base with a parent, else 2; read: 1, 2 (adds the
   mail watermark) and 3 (adds a base's parent) */
#define BUNDLE_FORMAT_VERSION 3
#define BUNDLE_ID_SIZE 16
#define BUNDLE_DIGEST_SIZE 32
/* limits enforced on encode, decode, scan and write */
#define BUNDLE_PATH_MAX 4096
#define BUNDLE_NAME_MAX 255
#define BUNDLE_KEY_MAX 1024
#define BUNDLE_MAX_ENTRIES (1U << 20)
/* the largest bundle a reader fetches from the store (packed or not) */
#define BUNDLE_FETCH_MAX (256U * 1024 * 1024)
#define BUNDLE_GUID_HEX_LEN 32
/* a symlink's target: 1..PATH_MAX - 1 bytes, no NUL */
#define BUNDLE_SYMLINK_MAX 4095

/* xattrs of the metacache; a stub's are encoded by stubattr.h (the
   legacy encoding: BUNDLE_XATTR_KEY and BUNDLE_XATTR_SIZE) */
#define BUNDLE_XATTR_KEY "user.oboxfs.key"
#define BUNDLE_XATTR_SIZE "user.oboxfs.size"
#define BUNDLE_XATTR_GUID "user.oboxfs.guid"

enum bundle_entry_type {
	BUNDLE_ENTRY_DIR = 1,
	BUNDLE_ENTRY_FILE = 2,
	/* a mail stub: an empty file with the key and size xattrs */
	BUNDLE_ENTRY_STUB = 3,
	/* special files (special.c), kept as inert entries of the index
	   tree; never hard-linked (each name is an inode of its own).  The
	   values are their record kinds (docs/bundle-format.md). */
	BUNDLE_ENTRY_SYMLINK = 7,	/* data/size: the target */
	BUNDLE_ENTRY_FIFO = 8,
	BUNDLE_ENTRY_SOCKET = 9,	/* an inode only: no one listens */
	BUNDLE_ENTRY_CHARDEV = 10,	/* rdev: the device number */
	BUNDLE_ENTRY_BLOCKDEV = 11,	/* rdev: the device number */
};

struct bundle_entry {
	/* canonical relative path: no leading/trailing '/', no empty, "."
	   or ".." segments */
	char *path;
	enum bundle_entry_type type;
	uint32_t mode;		/* permission bits only (07777) */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	/* entries with the same non-zero link_id are one inode (hard links);
	   ids are local to the tree */
	uint32_t link_id;
	/* FILE: length of data; STUB: the mail's size; SYMLINK: length of
	   the target; others: 0 */
	uint64_t size;
	/* FILE content (NULL if size is 0); SYMLINK target (no NUL) */
	unsigned char *data;
	char *key;		/* STUB object key */
	char guid[BUNDLE_GUID_HEX_LEN + 1]; /* DIR folder guid or "" */
	uint64_t rdev;		/* CHARDEV, BLOCKDEV: st_rdev; others: 0 */
	/* set by a scan, for the next incremental scan (not part of the
	   format, not compared): the file's inode number and link count on
	   disk, 0 if unknown */
	uint64_t ino;
	uint32_t nlink;
};

enum bundle_kind {
	BUNDLE_KIND_BASE = 1,
	BUNDLE_KIND_DIFF = 2,
};

/* What a bundle's header says about it (and, for a diff, its base). */
struct bundle_info {
	enum bundle_kind kind;
	/* creation time; a base bundle's name is built from it */
	uint32_t secs, usecs;
	/* the bundle's own 128-bit id (the last id in its name) */
	unsigned char id[BUNDLE_ID_SIZE];
	/* diff: 1, 2, ... in the order a writer produced them; base: 0 */
	uint32_t seq;
	/* diff: the base it applies to (zero for a base) */
	uint32_t base_secs, base_usecs;
	unsigned char base_id[BUNDLE_ID_SIZE];
	unsigned char base_digest[BUNDLE_DIGEST_SIZE];
	/* the mail watermark (version 2; 0/0 = none): every mail object of
	   this root made before this time (by its oid's time prefix,
	   ids_generate_timed()) that the tree does not reference was gone
	   or released when the tree was scanned, so a load need not list
	   older mails to find the ones missing from the tree.  Never later
	   than (secs, usecs); usecs < 1000000. */
	uint32_t mails_secs, mails_usecs;
	/* base (version 3; has_parent false: none): the bundle this base
	   descends from, named as in its key: its writer's previous newest
	   bundle (a rebase), or the other writer's newest bundle it merged
	   (a split brain).  A writer that built on that bundle's base knows
	   the base both built on from it (the merge's common base).
	   parent_is_diff: parent_diff_id names a diff of that base. */
	bool has_parent, parent_is_diff;
	uint32_t parent_secs, parent_usecs;
	unsigned char parent_base_id[BUNDLE_ID_SIZE];
	unsigned char parent_diff_id[BUNDLE_ID_SIZE];
	/* filled by encode/decode: the SHA-256 trailer of the bundle */
	unsigned char digest[BUNDLE_DIGEST_SIZE];
};

struct bundle_tree {
	/* sorted by path (byte order), so parents come before children */
	struct bundle_entry *entries;
	size_t count, alloc;
	/* true if the tree is exactly a stored base bundle (encoded by
	   bundle_encode_base() or decoded); base_info is then its header.
	   bundle_tree_add() clears it; whoever changes entries directly must
	   clear it too. */
	bool is_base;
	struct bundle_info base_info;
	/* true if the tree passed bundle_tree_check() as a scan made it
	   (bundle_diff() need not check it again); bundle_tree_add() clears
	   it, and so must whoever changes entries directly */
	bool checked;
};

struct bundle_diff;

/* A decoded bundle: kind BASE has tree, kind DIFF has diff. */
struct bundle {
	struct bundle_info info;
	struct bundle_tree *tree;
	struct bundle_diff *diff;
};

/* tree.c */
struct bundle_tree *bundle_tree_new(void);
/* A deep copy (abort if out of memory, like every bundle_x*()). */
struct bundle_tree *bundle_tree_copy(const struct bundle_tree *tree);
void bundle_tree_free(struct bundle_tree **tree);
/* Add a copy of entry (path, data and key are copied).  The tree is kept
   sorted; a duplicate or invalid path is refused. */
int bundle_tree_add(struct bundle_tree *tree, const struct bundle_entry *entry,
		    const char **error_r);
const struct bundle_entry *bundle_tree_find(const struct bundle_tree *tree,
					    const char *path);
/* What the tree takes on a local disk, estimated without looking at one
   (for the metacache's accounting): file contents rounded up to 4 KiB
   blocks (hard links once), 4 KiB per directory plus its entries (an
   ext4-style 8-byte header and the name, 4-byte aligned), stub_bytes per
   stub (empty files whose xattrs may need a block of their own: the
   caller measures it on its disk).  Pure: no I/O. */
uint64_t bundle_tree_disk_bytes(const struct bundle_tree *tree,
				uint64_t stub_bytes);
/* Validate a whole tree: sorted unique canonical paths, every parent a
   directory, field consistency, hard link groups of one file type with
   equal content/metadata. */
int bundle_tree_check(const struct bundle_tree *tree, const char **error_r);
/* True if both trees hold the same entries (link ids compared as groups).
   If not, *why_r says where they differ (static string or path). */
bool bundle_tree_equal(const struct bundle_tree *a,
		       const struct bundle_tree *b, const char **why_r);
/* 0 if path is a canonical relative path of at most BUNDLE_PATH_MAX bytes
   (segments of at most BUNDLE_NAME_MAX, no NUL, no "." or ".."). */
int bundle_path_check(const char *path, size_t len, const char **error_r);

/* scan.c: read the tree below dirfd (not including dirfd itself).  Regular
   files, directories, stubs (empty files with stubattr.h's xattrs) and
   special files (symlinks with their target, fifos, sockets, device nodes
   with their rdev).  Hard links of regular files within the tree get a
   common link_id. */
int bundle_tree_scan(int dirfd, struct bundle_tree **tree_r,
		     const char **error_r);

enum bundle_scan_action {
	BUNDLE_SCAN_INCLUDE = 0,
	/* leave the entry (and for a directory everything below) out */
	BUNDLE_SCAN_SKIP,
	/* include the directory itself but nothing below it (e.g. a folder
	   directory in the user's own tree: the folder has its own bundle) */
	BUNDLE_SCAN_NO_CHILDREN,
};
/* Called for each entry before it is read; path is relative to the scanned
   directory, is_dir tells what it is. */
typedef enum bundle_scan_action
bundle_scan_filter_t(const char *path, bool is_dir, void *context);
/* bundle_tree_scan() with a filter (NULL: include everything) */
int bundle_tree_scan_filtered(int dirfd, bundle_scan_filter_t *filter,
			      void *context, struct bundle_tree **tree_r,
			      const char **error_r);

/* An incremental scan: the tree of the last scan of the same directory,
   and which inodes changed since then.  A regular file whose inode number
   (from readdir(), no stat()) is in prev and did not change is taken from
   prev as it was (its content, stub key, metadata), under its current
   path; everything else is read.  Correct only if every change of a file
   (content, xattrs, metadata, link count) since prev was scanned is
   reported by changed(), and no inode number of prev was given to a new
   file without a change of its old file being reported. */
struct bundle_scan_prev {
	const struct bundle_tree *tree;
	bool (*changed)(uint64_t ino, void *context);
	void *context;
	/* lazy directories (engine/lazydir.h), or NULL: called once for
	   every directory scanned (fd open on it), it calls cb with each
	   entry (named by its name in the directory) the directory has
	   without it being on disk yet, and returns 1; 0 if the directory
	   has none, -1 with *error_r.  The scan takes those entries as
	   given for the names readdir() does not find there. */
	int (*lazy)(int dirfd, void (*cb)(const struct bundle_entry *e,
					  void *cb_context),
		    void *cb_context, void *context, const char **error_r);
	void *lazy_context;
	/* out: files taken from tree / read from disk */
	size_t reused, read;
};
int bundle_tree_scan_incremental(int dirfd, bundle_scan_filter_t *filter,
				 void *context, struct bundle_scan_prev *prev,
				 struct bundle_tree **tree_r,
				 const char **error_r);
/* bundle_tree_scan_incremental() in two steps, so that what must see the
   directory still (the walk, the files read) is apart from what needs
   only the result: bundle_tree_scan_begin() walks, reads what changed and
   notes which entries of prev->tree are taken again;
   bundle_tree_scan_finish() copies those, sorts the tree, resolves its
   hard links and checks it.  prev->tree must live, unchanged, until
   finish.  A caller that holds a lock against changes of the directory
   during the walk releases it before finish: on a 20,000-file directory
   the copies, the sort and the check are most of a scan's time.
   bundle_scan_free() drops a scan begun and not finished. */
struct bundle_scan;
int bundle_tree_scan_begin(int dirfd, bundle_scan_filter_t *filter,
			   void *context, struct bundle_scan_prev *prev,
			   struct bundle_scan **scan_r, const char **error_r);
int bundle_tree_scan_finish(struct bundle_scan **scan,
			    struct bundle_tree **tree_r, const char **error_r);
void bundle_scan_free(struct bundle_scan **scan);

/* write.c: create tree's entries below dirfd, which must be empty: stubs
   as empty files with their xattrs, hard links as links, special files
   with symlinkat()/mknodat() (device nodes need CAP_MKNOD), modes (not of
   symlinks), mtimes and (when running as root) owners restored, never
   following a symlink. */
int bundle_tree_write(const struct bundle_tree *tree, int dirfd,
		      const char **error_r);
/* Create the one stub e (e->path: a name in dirfd, no '/') as
   bundle_tree_write() would: the empty file with its xattrs, mode, mtime
   and (when root) owner.  Returns 1 if created, 0 if the name exists
   (nothing changed), -1 with errno and *error_r (nothing left behind).
   The directory's mtime changes, as with any create. */
int bundle_stub_create(int dirfd, const struct bundle_entry *e,
		       const char **error_r);

/* pack.c: the stored form of a bundle: its encoding (what
   bundle_encode_base() and bundle_diff() return) compressed as one zstd
   frame with its content size.  Replaces *data (malloc()ed) and *size.
   bundle_decode() takes packed and plain encodings, max_size limiting
   both the input and what it unpacks to. */
void bundle_pack(unsigned char **data, size_t *size);

/* encode.c: encode tree as a base bundle.  info gives secs, usecs, id
   and the mail watermark (kind, seq and the base fields are set by the
   function).  On success the
   tree becomes is_base with base_info = the header (digest included).
   *data_r is malloc()ed. */
int bundle_encode_base(struct bundle_tree *tree,
		       const struct bundle_info *info,
		       unsigned char **data_r, size_t *size_r,
		       const char **error_r);

/* diff.c: encode the changes from base (which must be is_base) to new_tree
   as a diff bundle.  info gives secs, usecs, id, seq (>= 1) and the mail
   watermark.  A diff
   is relative to the base, not to an earlier diff: it holds every change
   since the base. */
int bundle_diff(const struct bundle_tree *base,
		const struct bundle_tree *new_tree,
		const struct bundle_info *info,
		unsigned char **data_r, size_t *size_r, const char **error_r);
/* Apply a decoded diff to tree, which must be the is_base tree of the
   diff's base (same id and digest).  On failure tree is unchanged.  On
   success tree is no longer is_base. */
int bundle_apply_diff(struct bundle_tree *tree, const struct bundle_diff *diff,
		      const char **error_r);
/* number of entry records / deleted paths in a diff */
size_t bundle_diff_entry_count(const struct bundle_diff *diff);
size_t bundle_diff_delete_count(const struct bundle_diff *diff);

/* decode.c: decode and validate a bundle of size bytes; anything larger
   than max_size is refused before it is parsed. */
int bundle_decode(const void *data, size_t size, size_t max_size,
		  struct bundle **bundle_r, const char **error_r);
void bundle_free(struct bundle **bundle);

/* refs.c: call cb with the key of every stub the bundle holds (a base's
   tree, a diff's new or changed stubs; not what a diff leaves unchanged
   from its base). */
typedef void bundle_key_cb_t(const char *key, void *context);
void bundle_foreach_stub_key(const struct bundle *bundle,
			     bundle_key_cb_t *cb, void *context);

/* names.c: object names (CONTRACT section 4).  A base bundle is named
   "bundle.<secs: 8 hex>.<usecs: 5 hex>.<id: 32 hex>", a diff
   "<base name>-<diff id: 32 hex>", both under "<prefix>/idx/". */
#define BUNDLE_NAME_BASE_LEN (7 + 8 + 1 + 5 + 1 + 32)
#define BUNDLE_NAME_DIFF_LEN (BUNDLE_NAME_BASE_LEN + 1 + 32)

struct bundle_name {
	bool is_diff;
	uint32_t secs, usecs;
	unsigned char base_id[BUNDLE_ID_SIZE];
	unsigned char diff_id[BUNDLE_ID_SIZE]; /* if is_diff */
};

/* Format name (without prefix) into buf (BUNDLE_NAME_DIFF_LEN + 1 bytes
   suffice). */
void bundle_name_format(const struct bundle_name *name, char *buf,
			size_t size);
/* The name a bundle with this header must have. */
void bundle_name_from_info(const struct bundle_info *info,
			   struct bundle_name *name_r);
/* A base's parent (bundle_info.has_parent) as a name; false if none. */
bool bundle_name_parent(const struct bundle_info *info,
			struct bundle_name *name_r);
/* Set info's parent (a base's) to name. */
void bundle_info_set_parent(struct bundle_info *info,
			    const struct bundle_name *name);
/* Parse an untrusted name (the last segment of a key). */
int bundle_name_parse(const char *name, struct bundle_name *name_r,
		      const char **error_r);
/* "<prefix>/idx/<name>" into buf; -1 if it does not fit. */
int bundle_key_build(const char *prefix, const struct bundle_name *name,
		     char *buf, size_t size, const char **error_r);
/* The key of the base the diff named by diff_key (any key whose last
   segment is a diff's name) applies to, in the same directory, into buf;
   -1 if diff_key is not a diff's key or buf (size bytes) is too small. */
int bundle_key_base_of(const char *diff_key, char *buf, size_t size);
/* Order: bases by (secs, usecs, id); a diff after its base. */
int bundle_name_cmp(const struct bundle_name *a, const struct bundle_name *b);
/* From count parsed names (e.g. a listing), pick the newest base: its
   index in *base_idx_r (-1 if there is none) and the indexes of its diffs,
   in name order, in diff_idx_r (room for count) / *diff_count_r.  Which of
   the diffs is current is decided by their headers (seq, time), see
   docs/bundle-format.md. */
void bundle_names_select(const struct bundle_name *names, size_t count,
			 long *base_idx_r, size_t *diff_idx_r,
			 size_t *diff_count_r);
/* Order of two decoded diffs of one base: by (seq, secs, usecs, id).  The
   largest is the current one; equal seq from different ids means two
   writers (split brain). */
int bundle_diff_info_cmp(const struct bundle_info *a,
			 const struct bundle_info *b);
/* Fill id with a new random 128-bit id (getrandom()); -1 on error. */
int bundle_id_generate(unsigned char id[BUNDLE_ID_SIZE]);

#endif
