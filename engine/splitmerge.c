/* splitmerge.c: a split-brain merge of what the other writer did to the
 * maildir mails both writers have: flags and keywords, expunges (see
 * splitmerge.h). */
#include "splitmerge.h"
#include "sdboxflags.h"
#include "bundle.h"
#include "log.h"
#include "mailpath.h"
#include "maildirkw.h"
#include "smallfile.h"
#include "objgc.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the longest subscriptions file merged */
#define LINES_FILE_MAX (1024 * 1024)

const char *const splitmerge_changed_names[SPLITMERGE_CHANGED_COUNT] = {
	[SPLITMERGE_CUR] = "cur",
	[SPLITMERGE_NEW] = "new",
	[SPLITMERGE_KEYWORDS] = MAILDIRKW_FILE,
	[SPLITMERGE_SUBSCRIPTIONS] = "subscriptions",
};

/* GET and decode key; NULL if it cannot be had (logged) */
static struct bundle *fetch(struct objstore *store, const char *key,
			    unsigned int *gets_r)
{
	struct bundle *bundle;
	const char *error;
	size_t size;
	void *data;
	int ret;

	(*gets_r)++;
	if (objstore_get(store, key, 0, OBJSTORE_TO_END, BUNDLE_FETCH_MAX,
			 &data, &size) < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: reading the other "
			 "writer's bundle %s failed: %s\n", key,
			 objstore_error());
		return NULL;
	}
	ret = bundle_decode(data, size, BUNDLE_FETCH_MAX, &bundle, &error);
	free(data);
	if (ret < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: the other writer's "
			 "bundle %s is invalid: %s\n", key, error);
		return NULL;
	}
	return bundle;
}

static bool same_base(const struct bundle_name *a, const struct bundle_name *b)
{
	return a->secs == b->secs && a->usecs == b->usecs &&
	       memcmp(a->base_id, b->base_id, sizeof(a->base_id)) == 0;
}

/* No base among names[0..n) (all diffs): the key of the newest base they
   are diffs of (bundle_key_base_of()), with the indexes of its diffs in
   diff_idx / *diff_count_r; NULL if none. */
static char *diffs_base(const struct keylist *foreign,
			const struct bundle_name *names, const size_t *map,
			size_t n, size_t *diff_idx, size_t *diff_count_r)
{
	char key[BUNDLE_KEY_MAX + 1];
	size_t newest = n;

	*diff_count_r = 0;
	for (size_t i = 0; i < n; i++) {
		if (names[i].is_diff && (newest == n ||
		    bundle_name_cmp(&names[i], &names[newest]) > 0))
			newest = i;
	}
	if (newest == n)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (names[i].is_diff && same_base(&names[i], &names[newest]))
			diff_idx[(*diff_count_r)++] = i;
	}
	if (bundle_key_base_of(foreign->keys[map[newest]], key,
			       sizeof(key)) < 0)
		return NULL;
	return strdup(key);
}

/* base's parent is a bundle of local's base */
static bool parent_is_local(const struct bundle *base,
			    const struct splitmerge_local *local)
{
	struct bundle_name parent;

	return local != NULL && local->base != NULL &&
		bundle_name_parent(&base->info, &parent) &&
		parent.secs == local->base_name->secs &&
		parent.usecs == local->base_name->usecs &&
		memcmp(parent.base_id, local->base_name->base_id,
		       sizeof(parent.base_id)) == 0;
}

void splitmerge_fetch(struct objstore *store, const struct keylist *foreign,
		      const struct splitmerge_local *local,
		      struct splitmerge_trees *trees_r)
{
	unsigned int *gets_r = &trees_r->gets;
	struct bundle_name *names;
	struct bundle *base = NULL, *best = NULL;
	struct bundle_tree *tree = NULL;
	size_t *diff_idx, diff_count = 0, *map;
	const char *error;
	char *base_key;
	size_t n = 0;
	long base_idx;

	bool known_base = false;

	trees_r->other = trees_r->common = NULL;
	trees_r->sdbox_other = trees_r->sdbox_common = NULL;
	memset(&trees_r->other_name, 0, sizeof(trees_r->other_name));
	trees_r->other_mark_us = 0;
	*gets_r = 0;
	if (foreign->count == 0)
		return;
	names = calloc(foreign->count, sizeof(*names));
	map = calloc(foreign->count, sizeof(*map));
	diff_idx = calloc(foreign->count, sizeof(*diff_idx));
	if (names == NULL || map == NULL || diff_idx == NULL)
		goto out;
	for (size_t i = 0; i < foreign->count; i++) {
		const char *slash = strrchr(foreign->keys[i], '/');

		if (slash != NULL &&
		    bundle_name_parse(slash + 1, &names[n], &error) == 0)
			map[n++] = i;
	}
	bundle_names_select(names, n, &base_idx, diff_idx, &diff_count);
	if (base_idx >= 0) {
		base = fetch(store, foreign->keys[map[base_idx]], gets_r);
	} else if ((base_key = diffs_base(foreign, names, map, n, diff_idx,
					  &diff_count)) != NULL) {
		/* only diffs: of a base both writers loaded */
		base = fetch(store, base_key, gets_r);
		free(base_key);
		known_base = true;
	}
	if (base == NULL || base->tree == NULL)
		goto out;
	/* diffs are cumulative from their base: the current one suffices */
	for (size_t i = 0; i < diff_count; i++) {
		struct bundle *diff = fetch(store, foreign->keys[map[diff_idx[i]]],
					    gets_r);

		if (diff == NULL || diff->diff == NULL) {
			bundle_free(&diff);
			continue;
		}
		if (best == NULL ||
		    bundle_diff_info_cmp(&diff->info, &best->info) > 0) {
			bundle_free(&best);
			best = diff;
		} else {
			bundle_free(&diff);
		}
	}
	tree = base->tree;
	base->tree = NULL;
	if (best != NULL && known_base)
		trees_r->common = bundle_tree_copy(tree);
	else if (!known_base && parent_is_local(base, local))
		trees_r->common = bundle_tree_copy(local->base);
	bundle_name_from_info(best != NULL ? &best->info : &base->info,
			      &trees_r->other_name);
	const struct bundle_info *oi = best != NULL ? &best->info :
		&base->info;

	trees_r->other_mark_us = (uint64_t)oi->mails_secs * 1000000 +
		oi->mails_usecs;
	if (best != NULL &&
	    bundle_apply_diff(tree, best->diff, &error) < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: the other writer's "
			 "diff does not apply: %s: its base is used\n", error);
		/* what it expunged is unknown */
		bundle_tree_free(&trees_r->common);
		trees_r->other_mark_us = 0;
	}
	trees_r->other = tree;
	tree = NULL;
out:
	bundle_tree_free(&tree);
	bundle_free(&best);
	bundle_free(&base);
	free(names);
	free(map);
	free(diff_idx);
}

void splitmerge_trees_free(struct splitmerge_trees *trees)
{
	bundle_tree_free(&trees->other);
	bundle_tree_free(&trees->common);
	if (trees->sdbox_other != NULL)
		sdboxflags_free(trees->sdbox_other);
	if (trees->sdbox_common != NULL)
		sdboxflags_free(trees->sdbox_common);
	free(trees->sdbox_other);
	free(trees->sdbox_common);
	trees->sdbox_other = trees->sdbox_common = NULL;
}

struct key_name {
	const char *key, *path;
};

static int key_name_cmp(const void *p1, const void *p2)
{
	const struct key_name *a = p1, *b = p2;

	return strcmp(a->key, b->key);
}

/* the maildir stubs of tree (cur/, new/) by key; NULL if out of memory */
static struct key_name *stub_index(const struct bundle_tree *tree,
				   size_t *count_r)
{
	struct key_name *index = calloc(tree->count + 1, sizeof(*index));
	size_t n = 0;

	if (index == NULL)
		return NULL;
	for (size_t i = 0; i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB &&
		    (strncmp(e->path, "cur/", 4) == 0 ||
		     strncmp(e->path, "new/", 4) == 0)) {
			index[n].key = e->key;
			index[n++].path = e->path;
		}
	}
	qsort(index, n, sizeof(*index), key_name_cmp);
	*count_r = n;
	return index;
}

static const struct key_name *stub_find(const struct key_name *index,
					size_t n, const char *key)
{
	struct key_name want = { .key = key };

	return bsearch(&want, index, n, sizeof(*index), key_name_cmp);
}

/* the path of the stub of key in tree (a linear walk: called for the few
   mails expunged here), or NULL */
static const char *stub_path(const struct bundle_tree *tree, const char *key)
{
	for (size_t i = 0; tree != NULL && i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB && strcmp(e->key, key) == 0 &&
		    (strncmp(e->path, "cur/", 4) == 0 ||
		     strncmp(e->path, "new/", 4) == 0))
			return e->path;
	}
	return NULL;
}

/* the UID of tree's sdbox stub of key (dbox-Mails/u.N), or 0 */
static uint32_t sdbox_stub_uid(const struct bundle_tree *tree, const char *key)
{
	static const char prefix[] = MAILPATH_DBOX_MAILS "/";
	uint32_t uid;

	for (size_t i = 0; tree != NULL && i < tree->count; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (e->type == BUNDLE_ENTRY_STUB && strcmp(e->key, key) == 0 &&
		    strncmp(e->path, prefix, sizeof(prefix) - 1) == 0 &&
		    mailpath_sdbox_uid(e->path + sizeof(prefix) - 1, &uid))
			return uid;
	}
	return 0;
}

/* tree's sdbox flags, parsed into *cache at the first call */
static const struct sdboxflags *sdbox_flags(const struct bundle_tree *tree,
					    struct sdboxflags **cache)
{
	if (*cache == NULL) {
		*cache = malloc(sizeof(**cache));
		if (*cache == NULL)
			abort();
		sdboxflags_from_tree(tree, MAILPATH_DBOX_MAILS, *cache);
	}
	return *cache;
}

/* an sdbox mail's flags or keywords differ between its index entries a
   (of fa: the other writer's) and b (of fb: the common base's); a mail
   the other index lacks: false; one only the common base's lacks (not
   indexed there yet): whether the other writer's has any flag (the side
   that keeps the mail) */
static bool sdbox_differs(const struct sdboxflags *fa, uint32_t a,
			  const struct sdboxflags *fb, uint32_t b)
{
	const struct sdboxflags_mail *ma = sdboxflags_find(fa, a);
	const struct sdboxflags_mail *mb = sdboxflags_find(fb, b);
	static const struct sdboxflags_mail none;

	if (ma == NULL)
		return false;
	if (mb == NULL)
		mb = &none;
	if (ma->flags != mb->flags)
		return true;
	for (unsigned int k = 0; k < fa->keyword_count; k++) {
		int kb = sdboxflags_keyword_index(fb, fa->keywords[k]);

		if (sdboxflags_has_keyword(ma, k) !=
		    (kb >= 0 && sdboxflags_has_keyword(mb, (unsigned int)kb)))
			return true;
	}
	for (unsigned int k = 0; k < fb->keyword_count; k++) {
		if (sdboxflags_has_keyword(mb, k) &&
		    sdboxflags_keyword_index(fa, fb->keywords[k]) < 0)
			return true;
	}
	return false;
}

bool splitmerge_changed_there(struct splitmerge_trees *trees,
			      const char *key)
{
	const char *there, *base;
	uint32_t uid_there, uid_base;

	if (trees->other == NULL || trees->common == NULL)
		return false;
	if ((there = stub_path(trees->other, key)) != NULL &&
	    (base = stub_path(trees->common, key)) != NULL)
		return !mailpath_maildir_same_flags(there + 4, base + 4);
	uid_there = sdbox_stub_uid(trees->other, key);
	uid_base = sdbox_stub_uid(trees->common, key);
	if (uid_there == 0 || uid_base == 0)
		return false;
	const struct sdboxflags *there_flags =
		sdbox_flags(trees->other, &trees->sdbox_other);
	const struct sdboxflags *base_flags =
		sdbox_flags(trees->common, &trees->sdbox_common);

	/* damaged index files say nothing sure: the mail stays */
	if (there_flags->incomplete || base_flags->incomplete)
		return true;
	return sdbox_differs(there_flags, uid_there, base_flags, uid_base);
}

unsigned int splitmerge_expunges(int folder_fd, struct objgc *gc,
				 const struct keylist *keys,
				 const struct keylist *paths,
				 const struct splitmerge_trees *trees,
				 bool changed[SPLITMERGE_CHANGED_COUNT],
				 struct keylist *names_r)
{
	struct key_name *other = NULL, *common = NULL;
	size_t n_other, n_common;
	unsigned int expunged = 0;

	if (trees->other == NULL || trees->common == NULL ||
	    (other = stub_index(trees->other, &n_other)) == NULL ||
	    (common = stub_index(trees->common, &n_common)) == NULL)
		goto out;
	for (size_t i = 0; i < keys->count; i++) {
		const struct key_name *base =
			stub_find(common, n_common, keys->keys[i]);
		const char *local = paths->keys[i];

		/* in the common base, gone on the other side, and here
		   with the base's flags: untouched here since (Dovecot
		   moving it from new/ to cur/ changes no flag) */
		if (base == NULL ||
		    stub_find(other, n_other, keys->keys[i]) != NULL ||
		    !mailpath_maildir_same_flags(base->path + 4, local + 4))
			continue;
		if (unlinkat(folder_fd, local, 0) < 0) {
			if (errno != ENOENT)	/* ENOENT: dropped already */
				obox_log(OBOX_LOG_ERR, "split brain: unlink(%s) "
					 "failed: %s\n", local,
					 strerror(errno));
			continue;
		}
		obox_log(OBOX_LOG_INFO, "split brain: %s was expunged by the "
			 "other writer: expunged here too\n", local);
		(void)objgc_release(gc, keys->keys[i]);
		(void)keylist_add(names_r, local);
		changed[local[0] == 'c' ? SPLITMERGE_CUR : SPLITMERGE_NEW] =
			true;
		expunged++;
	}
out:
	free(other);
	free(common);
	return expunged;
}

/* other_name ("<base>" or "<base>:2,<flags>", the other writer's) with
   its keyword letters mapped to this folder's (local, added to it if
   may_add; a keyword without a name or a letter is left out) into out */
static int map_keywords(const char *other_name, const struct maildirkw *other,
			struct maildirkw *local, bool may_add, char *out,
			size_t size)
{
	const char *flags = strstr(other_name, ":2,");
	size_t len;

	if (flags == NULL) {
		if (strlen(other_name) >= size)
			return -1;
		memcpy(out, other_name, strlen(other_name) + 1);
		return 0;
	}
	flags += 3;
	len = (size_t)(flags - other_name);
	if (len + strlen(flags) >= size)
		return -1;
	memcpy(out, other_name, len);
	for (const char *p = flags; *p != '\0'; p++) {
		const char *name;
		char c = *p;

		if (c >= 'a' && c <= 'z') {
			name = maildirkw_name(other, c);
			c = name == NULL ? 0 :
				maildirkw_letter(local, name, may_add);
			if (c == 0)
				continue;
		}
		out[len++] = c;
	}
	out[len] = '\0';
	return 0;
}

/* the keywords of the other writer's tree (its dovecot-keywords) */
static void other_keywords(const struct bundle_tree *other,
			   struct maildirkw *kw_r)
{
	const struct bundle_entry *e = bundle_tree_find(other,
							MAILDIRKW_FILE);

	memset(kw_r, 0, sizeof(*kw_r));
	if (e != NULL && e->type == BUNDLE_ENTRY_FILE && e->data != NULL)
		maildirkw_parse(kw_r, (const char *)e->data, (size_t)e->size);
}

unsigned int splitmerge_flags(int folder_fd, const struct keylist *keys,
			      const struct keylist *paths,
			      const struct bundle_tree *other,
			      bool changed[SPLITMERGE_CHANGED_COUNT],
			      struct keylist *names_r)
{
	struct maildirkw local_kw = { 0 }, other_kw;
	struct key_name *index;
	unsigned int renamed = 0;
	char mapped[MAILPATH_NAME_MAX + 1];
	bool may_add = true;
	size_t n;

	if (other == NULL || keys->count == 0 ||
	    (index = stub_index(other, &n)) == NULL)
		return 0;
	other_keywords(other, &other_kw);
	if (maildirkw_read(folder_fd, &local_kw) < 0) {
		obox_log(OBOX_LOG_WARNING, "split brain: reading %s failed: "
			 "%s: the other writer's keywords are not merged\n",
			 MAILDIRKW_FILE, strerror(errno));
		may_add = false;
	}
	/* the names the other writer's keywords need are in this folder's
	   file before any stub name uses their letters */
	for (size_t i = 0; may_add && i < keys->count; i++) {
		const struct key_name *found =
			stub_find(index, n, keys->keys[i]);

		if (found != NULL)
			(void)map_keywords(found->path + 4, &other_kw,
					   &local_kw, true, mapped,
					   sizeof(mapped));
	}
	if (local_kw.changed) {
		if (maildirkw_write(folder_fd, &local_kw) == 0) {
			changed[SPLITMERGE_KEYWORDS] = true;
		} else {
			obox_log(OBOX_LOG_WARNING, "split brain: writing %s "
				 "failed: %s: the other writer's new keywords "
				 "are not merged\n", MAILDIRKW_FILE,
				 strerror(errno));
			(void)maildirkw_read(folder_fd, &local_kw);
		}
	}
	for (size_t i = 0; i < keys->count; i++) {
		const struct key_name *found;
		const char *local = paths->keys[i];
		char name[MAILPATH_NAME_MAX + 1], target[PATH_MAX];

		found = stub_find(index, n, keys->keys[i]);
		if (found == NULL ||
		    map_keywords(found->path + 4, &other_kw, &local_kw, false,
				 mapped, sizeof(mapped)) < 0 ||
		    mailpath_maildir_flags_union(local + 4, mapped, name,
						 sizeof(name)) != 1)
			continue;
		snprintf(target, sizeof(target), "cur/%s", name);
		/* never over another file: the name is new, or skip */
		if (renameat2(folder_fd, local, folder_fd, target,
			      RENAME_NOREPLACE) < 0) {
			if (errno == ENOENT)	/* expunged just now */
				continue;
			obox_log(OBOX_LOG_WARNING, "split brain: rename(%s, %s) "
				 "failed: %s\n", local, target,
				 strerror(errno));
			continue;
		}
		changed[local[0] == 'c' ? SPLITMERGE_CUR : SPLITMERGE_NEW] =
			true;
		changed[SPLITMERGE_CUR] = true;
		(void)keylist_add(names_r, local);
		(void)keylist_add(names_r, target);
		renamed++;
	}
	free(index);
	maildirkw_clear(&local_kw);
	maildirkw_clear(&other_kw);
	return renamed;
}

/* is the line (len bytes) one of text's lines? */
static bool has_line(const char *text, size_t text_len, const char *line,
		     size_t len)
{
	for (size_t start = 0; start < text_len; ) {
		const char *nl = memchr(text + start, '\n', text_len - start);
		size_t end = nl == NULL ? text_len : (size_t)(nl - text);

		if (end - start == len && memcmp(text + start, line, len) == 0)
			return true;
		start = end + 1;
	}
	return false;
}

unsigned int splitmerge_lines(int folder_fd, const struct bundle_tree *other,
			      bool changed[SPLITMERGE_CHANGED_COUNT])
{
	const char *name = splitmerge_changed_names[SPLITMERGE_SUBSCRIPTIONS];
	const struct bundle_entry *e;
	const char *theirs;
	char *ours = NULL, *merged = NULL;
	size_t ours_len, theirs_len, merged_len = 0;
	unsigned int added = 0;
	FILE *f;
	int ret;

	if (other == NULL || (e = bundle_tree_find(other, name)) == NULL ||
	    e->type != BUNDLE_ENTRY_FILE || e->size == 0 ||
	    e->size > LINES_FILE_MAX)
		return 0;
	theirs = (const char *)e->data;
	theirs_len = (size_t)e->size;
	ret = smallfile_read(folder_fd, name, LINES_FILE_MAX, &ours,
			     &ours_len);
	if (ret < 0 || (f = open_memstream(&merged, &merged_len)) == NULL) {
		obox_log(OBOX_LOG_WARNING, "split brain: reading %s failed: "
			 "%s: the other writer's lines are not merged\n",
			 name, strerror(errno));
		free(ours);
		return 0;
	}
	if (ours_len > 0) {
		fwrite(ours, 1, ours_len, f);
		if (ours[ours_len - 1] != '\n')
			fputc('\n', f);
	}
	for (size_t start = 0; start < theirs_len; ) {
		const char *nl = memchr(theirs + start, '\n',
					theirs_len - start);
		size_t end = nl == NULL ? theirs_len : (size_t)(nl - theirs);

		if (!has_line(ours, ours_len, theirs + start, end - start)) {
			fwrite(theirs + start, 1, end - start, f);
			fputc('\n', f);
			added++;
		}
		start = end + 1;
	}
	if (fclose(f) != 0) {
		free(ours);
		free(merged);
		return 0;
	}
	if (added > 0) {
		if (smallfile_rewrite(folder_fd, name, merged,
				      merged_len) == 0) {
			changed[SPLITMERGE_SUBSCRIPTIONS] = true;
		} else {
			obox_log(OBOX_LOG_WARNING, "split brain: writing %s "
				 "failed: %s\n", name, strerror(errno));
			added = 0;
		}
	}
	free(ours);
	free(merged);
	return added;
}
