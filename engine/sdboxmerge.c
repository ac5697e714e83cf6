/* sdboxmerge.c: see sdboxmerge.h. */
#include "sdboxmerge.h"
#include "bundle.h"
#include "stubattr.h"
#include "dovecotfmt.h"
#include "mailpath.h"
#include "sdboxflags.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALIGN4(n) (((n) + 3) & ~(size_t)3)

/* a growing byte buffer */
struct buf {
	unsigned char *data;
	size_t size, alloc;
};

static unsigned char *buf_append(struct buf *b, size_t len)
{
	if (b->alloc - b->size < len) {
		size_t alloc = b->alloc == 0 ? 256 : b->alloc;

		while (alloc - b->size < len)
			alloc *= 2;
		b->data = realloc(b->data, alloc);
		if (b->data == NULL)
			abort();
		b->alloc = alloc;
	}
	b->size += len;
	return b->data + b->size - len;
}

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* the ranges of consecutive uids of the sorted uids[0..count) */
static size_t range_end(const uint32_t *uids, size_t i, size_t count)
{
	while (i + 1 < count && uids[i + 1] == uids[i] + 1)
		i++;
	return i;
}

/* a FLAG_UPDATE record adding add to uids (sorted) */
static void flag_record(struct buf *b, const uint32_t *uids, size_t count,
			uint8_t add)
{
	size_t start = b->size, entries = 0;

	(void)buf_append(b, DOVECOTFMT_RECORD_HEADER_SIZE);
	for (size_t i = 0; i < count; i++) {
		size_t end = range_end(uids, i, count);
		unsigned char *e = buf_append(b, DOVECOTFMT_FLAG_UPDATE_SIZE);

		memset(e, 0, DOVECOTFMT_FLAG_UPDATE_SIZE);
		put32(e, uids[i]);
		put32(e + 4, uids[end]);
		e[8] = add;
		entries++;
		i = end;
	}
	dovecotfmt_rec_header(b->data + start, DOVECOTFMT_EXTERNAL |
			      DOVECOTFMT_FLAG_UPDATE,
			      entries * DOVECOTFMT_FLAG_UPDATE_SIZE);
}

/* a KEYWORD_UPDATE record adding name to uids (sorted) */
static void keyword_record(struct buf *b, const uint32_t *uids, size_t count,
			   const char *name)
{
	size_t start = b->size, name_size = strlen(name);
	size_t head = ALIGN4(4 + name_size);
	unsigned char *p;
	uint16_t ns = (uint16_t)name_size;

	(void)buf_append(b, DOVECOTFMT_RECORD_HEADER_SIZE);
	p = buf_append(b, head);
	memset(p, 0, head);
	p[0] = DOVECOTFMT_MODIFY_ADD;
	memcpy(p + 2, &ns, 2);
	memcpy(p + 4, name, name_size);
	for (size_t i = 0; i < count; i++) {
		size_t end = range_end(uids, i, count);

		p = buf_append(b, 8);
		put32(p, uids[i]);
		put32(p + 4, uids[end]);
		i = end;
	}
	dovecotfmt_rec_header(b->data + start, DOVECOTFMT_EXTERNAL |
			      DOVECOTFMT_KEYWORD_UPDATE,
			      b->size - start - DOVECOTFMT_RECORD_HEADER_SIZE);
}

static int pair_cmp(const void *a, const void *b)
{
	const struct sdboxmerge_pair *x = a, *y = b;

	return x->local_uid < y->local_uid ? -1 :
		x->local_uid > y->local_uid;
}

void sdboxmerge_records(const struct sdboxflags *local,
			const struct sdboxflags *other,
			const struct sdboxmerge_pair *pairs_in, size_t count,
			struct sdboxmerge_result *r)
{
	struct sdboxmerge_pair *pairs = NULL;
	uint32_t *uids = NULL;
	uint8_t *add = NULL;
	bool *changed = NULL;
	struct buf b = { 0 };
	size_t n;

	memset(r, 0, sizeof(*r));
	if (count == 0)
		return;
	pairs = malloc(count * sizeof(*pairs));
	uids = malloc(count * sizeof(*uids));
	add = calloc(count, sizeof(*add));
	changed = calloc(count, sizeof(*changed));
	if (pairs == NULL || uids == NULL || add == NULL || changed == NULL)
		abort();
	memcpy(pairs, pairs_in, count * sizeof(*pairs));
	qsort(pairs, count, sizeof(*pairs), pair_cmp);

	/* system flags: one record per set of flags added */
	for (size_t i = 0; i < count; i++) {
		const struct sdboxflags_mail *l =
			sdboxflags_find(local, pairs[i].local_uid);
		const struct sdboxflags_mail *o =
			sdboxflags_find(other, pairs[i].other_uid);

		if (l != NULL && o != NULL)
			add[i] = o->flags & (uint8_t)~l->flags &
				DOVECOTFMT_MAIL_FLAGS;
	}
	for (unsigned int mask = 1; mask <= DOVECOTFMT_MAIL_FLAGS; mask++) {
		n = 0;
		for (size_t i = 0; i < count; i++) {
			if (add[i] == mask && (n == 0 ||
					       uids[n - 1] != pairs[i].local_uid)) {
				uids[n++] = pairs[i].local_uid;
				changed[i] = true;
			}
		}
		if (n > 0)
			flag_record(&b, uids, n, (uint8_t)mask);
	}
	/* keywords: one record per name added */
	for (unsigned int k = 0; k < other->keyword_count; k++) {
		int lk = sdboxflags_keyword_index(local, other->keywords[k]);

		n = 0;
		for (size_t i = 0; i < count; i++) {
			const struct sdboxflags_mail *l =
				sdboxflags_find(local, pairs[i].local_uid);
			const struct sdboxflags_mail *o =
				sdboxflags_find(other, pairs[i].other_uid);

			if (l == NULL || o == NULL ||
			    !sdboxflags_has_keyword(o, k) ||
			    (lk >= 0 &&
			     sdboxflags_has_keyword(l, (unsigned int)lk)) ||
			    (n > 0 && uids[n - 1] == pairs[i].local_uid))
				continue;
			uids[n++] = pairs[i].local_uid;
			changed[i] = true;
		}
		if (n > 0)
			keyword_record(&b, uids, n, lk >= 0 ?
				       local->keywords[lk] : other->keywords[k]);
	}
	for (size_t i = 0; i < count; i++) {
		if (changed[i] && (i == 0 || !changed[i - 1] ||
				   pairs[i - 1].local_uid != pairs[i].local_uid))
			r->mails++;
	}
	r->records = b.data;
	r->size = b.size;
	free(pairs);
	free(uids);
	free(add);
	free(changed);
}

/* the stubs of tree below dir ("" or "dbox-Mails"): (key, uid) */
struct keyed_uid {
	const char *key;
	uint32_t uid;
};

static int keyed_cmp(const void *a, const void *b)
{
	return strcmp(((const struct keyed_uid *)a)->key,
		      ((const struct keyed_uid *)b)->key);
}

static struct keyed_uid *tree_uids(const struct bundle_tree *tree,
				   const char *dir, size_t *count_r)
{
	struct keyed_uid *out = calloc(tree->count + 1, sizeof(*out));
	size_t len = strlen(dir), n = 0;

	if (out == NULL)
		abort();
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];
		const char *name = e->path;
		uint32_t uid;

		if (e->type != BUNDLE_ENTRY_STUB || e->key == NULL)
			continue;
		if (len > 0) {
			if (strncmp(name, dir, len) != 0 || name[len] != '/')
				continue;
			name += len + 1;
		}
		if (strchr(name, '/') != NULL ||
		    !mailpath_sdbox_uid(name, &uid))
			continue;
		out[n].key = e->key;
		out[n].uid = uid;
		n++;
	}
	qsort(out, n, sizeof(*out), keyed_cmp);
	*count_r = n;
	return out;
}

/* the u.N stubs of dbox_fd: (key, uid), sorted by key (keys point into
   *keys_r, malloc()ed); -1 with errno */
static int dir_uids(int dbox_fd, struct keyed_uid **out_r, size_t *count_r,
		    char **keys_r)
{
	struct keyed_uid *out = NULL;
	char *keys = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	DIR *dir;
	int fd = openat(dbox_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		char key[BUNDLE_KEY_MAX + 1];
		const char *error;
		uint64_t size;
		uint32_t uid;
		int sfd, ret;

		if (!mailpath_sdbox_uid(de->d_name, &uid))
			continue;
		sfd = openat(dirfd(dir), de->d_name, O_PATH | O_NOFOLLOW |
			     O_CLOEXEC);
		if (sfd < 0)
			continue;	/* gone meanwhile */
		ret = bundle_stub_attr_read(sfd, key, &size, &error);
		close(sfd);
		if (ret <= 0)
			continue;	/* not a stub, or damaged: not paired */
		if (n == alloc) {
			alloc = alloc == 0 ? 64 : alloc * 2;
			out = realloc(out, alloc * sizeof(*out));
			keys = realloc(keys, alloc * (BUNDLE_KEY_MAX + 1));
			if (out == NULL || keys == NULL)
				abort();
		}
		memcpy(keys + n * (BUNDLE_KEY_MAX + 1), key, sizeof(key));
		out[n].uid = uid;
		n++;
	}
	closedir(dir);
	for (size_t i = 0; i < n; i++)
		out[i].key = keys + i * (BUNDLE_KEY_MAX + 1);
	if (n > 0)
		qsort(out, n, sizeof(*out), keyed_cmp);
	*out_r = out;
	*count_r = n;
	*keys_r = keys;
	return 0;
}

/* the entry of keyed (sorted) with key, if exactly one has it */
static const struct keyed_uid *find_one(const struct keyed_uid *keyed,
					size_t count, const char *key)
{
	struct keyed_uid want = { .key = key };
	const struct keyed_uid *k = count == 0 ? NULL :
		bsearch(&want, keyed, count, sizeof(*keyed), keyed_cmp);

	if (k == NULL ||
	    (k > keyed && strcmp(k[-1].key, key) == 0) ||
	    (k + 1 < keyed + count && strcmp(k[1].key, key) == 0))
		return NULL;	/* none, or copies: which one is unknown */
	return k;
}

int sdboxmerge_flags(int folder_fd, const struct bundle_tree *other,
		     struct sdboxmerge_result *r)
{
	struct sdboxflags local_flags, other_flags;
	struct keyed_uid *mine = NULL, *theirs;
	struct sdboxmerge_pair *pairs;
	size_t n_mine = 0, n_theirs, n = 0;
	char *keys = NULL;
	int dbox_fd, saved;

	memset(r, 0, sizeof(*r));
	dbox_fd = openat(folder_fd, MAILPATH_DBOX_MAILS, O_RDONLY |
			 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dbox_fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (dir_uids(dbox_fd, &mine, &n_mine, &keys) < 0 ||
	    sdboxflags_read(dbox_fd, &local_flags) < 0) {
		saved = errno;
		free(mine);
		free(keys);
		close(dbox_fd);
		errno = saved;
		return -1;
	}
	close(dbox_fd);
	sdboxflags_from_tree(other, MAILPATH_DBOX_MAILS, &other_flags);
	if (local_flags.incomplete || other_flags.incomplete) {
		/* damaged or hostile index files: nothing merged from them
		   (not tried again: they stay so) */
		r->incomplete = true;
		n_mine = 0;
	}
	theirs = tree_uids(other, MAILPATH_DBOX_MAILS, &n_theirs);
	pairs = calloc(n_mine + 1, sizeof(*pairs));
	if (pairs == NULL)
		abort();
	for (size_t i = 0; i < n_mine; i++) {
		const struct keyed_uid *t = find_one(theirs, n_theirs,
						     mine[i].key);

		if (t != NULL && find_one(mine, n_mine, mine[i].key) != NULL) {
			pairs[n].local_uid = mine[i].uid;
			pairs[n].other_uid = t->uid;
			n++;
		}
	}
	sdboxmerge_records(&local_flags, &other_flags, pairs, n, r);
	free(pairs);
	free(mine);
	free(keys);
	free(theirs);
	sdboxflags_free(&local_flags);
	sdboxflags_free(&other_flags);
	return 0;
}

void sdboxmerge_result_free(struct sdboxmerge_result *r)
{
	free(r->records);
	memset(r, 0, sizeof(*r));
}
