/* sdboxmerge.c: see sdboxmerge.h. */
#include "sdboxmerge.h"
#include "bundle.h"
#include "dovecotfmt.h"
#include "mailpath.h"
#include "sdboxflags.h"

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

int sdboxmerge_flags(int folder_fd, const struct bundle_tree *other,
		     struct sdboxmerge_result *r)
{
	struct sdboxflags local_flags, other_flags;
	struct bundle_tree *local_tree = NULL;
	struct keyed_uid *mine, *theirs;
	struct sdboxmerge_pair *pairs;
	size_t n_mine, n_theirs, n = 0;
	const char *error;
	int dbox_fd, saved;

	memset(r, 0, sizeof(*r));
	dbox_fd = openat(folder_fd, MAILPATH_DBOX_MAILS, O_RDONLY |
			 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dbox_fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (bundle_tree_scan(dbox_fd, &local_tree, &error) < 0 ||
	    sdboxflags_read(dbox_fd, &local_flags) < 0) {
		saved = errno;
		bundle_tree_free(&local_tree);
		close(dbox_fd);
		errno = saved == 0 ? EIO : saved;
		return -1;
	}
	close(dbox_fd);
	sdboxflags_from_tree(other, MAILPATH_DBOX_MAILS, &other_flags);
	mine = tree_uids(local_tree, "", &n_mine);
	theirs = tree_uids(other, MAILPATH_DBOX_MAILS, &n_theirs);
	pairs = calloc(n_mine + 1, sizeof(*pairs));
	if (pairs == NULL)
		abort();
	for (size_t i = 0; i < n_mine; i++) {
		struct keyed_uid *t = bsearch(&mine[i], theirs, n_theirs,
					      sizeof(*theirs), keyed_cmp);

		if (t != NULL) {
			pairs[n].local_uid = mine[i].uid;
			pairs[n].other_uid = t->uid;
			n++;
		}
	}
	sdboxmerge_records(&local_flags, &other_flags, pairs, n, r);
	free(pairs);
	free(mine);
	free(theirs);
	sdboxflags_free(&local_flags);
	sdboxflags_free(&other_flags);
	bundle_tree_free(&local_tree);
	return 0;
}

void sdboxmerge_result_free(struct sdboxmerge_result *r)
{
	free(r->records);
	memset(r, 0, sizeof(*r));
}
