/* roots.c: a user's bundle roots and their state file (see roots.h). */
#include "roots.h"
#include "log.h"
#include "objstore.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void root_free(struct upload_root *root)
{
	free(root->path);
	bundle_tree_free(&root->base);
	bundle_tree_free(&root->last);
	roots_free_keys(root);
	free(root);
}

void roots_free_keys(struct upload_root *root)
{
	for (size_t i = 0; i < root->key_count; i++)
		free(root->keys[i]);
	free(root->keys);
	root->keys = NULL;
	root->key_count = 0;
}

void roots_forget(struct user_roots *roots)
{
	struct upload_root *root = roots->list, *next;

	for (; root != NULL; root = next) {
		next = root->next;
		root_free(root);
	}
	roots->list = NULL;
	roots->read = false;
	while (roots->gone != NULL)
		roots_remove_gone(roots, roots->gone);
}

void roots_add_gone(struct user_roots *roots, const struct upload_root *root,
		    uint64_t *mail_hashes, size_t mail_count)
{
	struct gone_root *gone;

	if (root->guid[0] == '\0' || root->path == NULL) {
		free(mail_hashes);
		return;
	}
	gone = calloc(1, sizeof(*gone));
	if (gone == NULL || (gone->path = strdup(root->path)) == NULL) {
		free(gone);
		free(mail_hashes);
		return;	/* out of memory: only not checked */
	}
	memcpy(gone->guid, root->guid, sizeof(gone->guid));
	gone->mail_hashes = mail_hashes;
	gone->mail_count = mail_count;
	gone->next = roots->gone;
	roots->gone = gone;
}

void roots_remove_gone(struct user_roots *roots, struct gone_root *gone)
{
	for (struct gone_root **p = &roots->gone; *p != NULL;
	     p = &(*p)->next) {
		if (*p == gone) {
			*p = gone->next;
			free(gone->path);
			free(gone->mail_hashes);
			free(gone);
			return;
		}
	}
}

void roots_remove(struct user_roots *roots, struct upload_root *root)
{
	struct upload_root **p = &roots->list;

	while (*p != NULL && *p != root)
		p = &(*p)->next;
	if (*p != NULL) {
		*p = root->next;
		root_free(root);
	}
}

struct upload_root *roots_find(struct user_roots *roots, const char *guid)
{
	for (struct upload_root *r = roots->list; r != NULL; r = r->next) {
		if (strcmp(r->guid, guid) == 0)
			return r;
	}
	return NULL;
}

struct upload_root *roots_get(struct user_roots *roots, const char *guid)
{
	struct upload_root *root = roots_find(roots, guid);

	if (root != NULL)
		return root;
	for (struct gone_root *g = roots->gone; g != NULL; g = g->next) {
		if (strcmp(g->guid, guid) == 0) {
			roots_remove_gone(roots, g);	/* here again */
			break;
		}
	}
	root = calloc(1, sizeof(*root));
	if (root == NULL)
		return NULL;
	snprintf(root->guid, sizeof(root->guid), "%s", guid);
	root->next = roots->list;
	roots->list = root;
	return root;
}

int roots_add_key(struct upload_root *root, const char *key)
{
	char **keys = realloc(root->keys,
			      (root->key_count + 1) * sizeof(*keys));

	if (keys == NULL)
		return -1;
	root->keys = keys;
	keys[root->key_count] = strdup(key);
	if (keys[root->key_count] == NULL)
		return -1;
	root->key_count++;
	return 0;
}

int roots_add_loaded(struct user_roots *roots, const char *guid,
		     char *const *keys, size_t key_count)
{
	struct upload_root *root = roots_get(roots, guid);

	if (root == NULL)
		return -1;
	for (size_t i = 0; i < key_count; i++) {
		if (roots_add_key(root, keys[i]) < 0)
			return -1;
	}
	return 0;
}

void roots_save(struct user_roots *roots, const char *path)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		goto fail;
	for (struct upload_root *r = roots->list; r != NULL; r = r->next) {
		for (size_t i = 0; i < r->key_count; i++) {
			fprintf(f, "%s %s\n", r->guid[0] == '\0' ? "-" :
				r->guid, r->keys[i]);
		}
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		goto fail;
	return;
fail:
	obox_log(OBOX_LOG_WARNING, "saving %s failed: %s (old bundles may "
		 "be left in the store)\n", path, strerror(errno));
}

void roots_read(struct user_roots *roots, const char *path,
		const char *prefix)
{
	size_t prefix_len = strlen(prefix);
	const char *error;
	char *line = NULL;
	size_t size = 0;
	ssize_t len;
	FILE *f;

	roots->read = true;
	f = fopen(path, "r");
	if (f == NULL)
		return;
	/* "<guid or -> <key>\n"; anything else (torn, over-long) is
	   skipped whole */
	while ((len = getline(&line, &size, f)) > 0) {
		char *sp = strchr(line, ' '), *key;

		if (line[len - 1] != '\n' || sp == NULL ||
		    len - 1 > IDS_HEX_LEN + 1 + OBJSTORE_KEY_MAX)
			continue;
		line[len - 1] = '\0';
		if (strlen(line) != (size_t)len - 1)
			continue;	/* a NUL inside */
		*sp = '\0';
		key = sp + 1;
		if ((strcmp(line, "-") != 0 && !ids_is_hex_id(line)) ||
		    strncmp(key, prefix, prefix_len) != 0 ||
		    key[prefix_len] != '/' ||
		    objstore_key_check(key, &error) < 0)
			continue;
		struct upload_root *root =
			roots_get(roots, strcmp(line, "-") == 0 ? "" : line);

		if (root != NULL)
			(void)roots_add_key(root, key);
	}
	free(line);
	fclose(f);
}
