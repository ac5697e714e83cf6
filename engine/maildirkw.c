/* maildirkw.c: see maildirkw.h. */
#include "maildirkw.h"
#include "smallfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NAME_MAX_LEN 255

void maildirkw_clear(struct maildirkw *kw)
{
	for (unsigned int i = 0; i < MAILDIRKW_MAX; i++) {
		free(kw->names[i]);
		kw->names[i] = NULL;
	}
	kw->changed = false;
}

/* an IMAP atom's bytes: printable, no space (nor atom-specials that
   matter to a file of lines) */
static bool name_ok(const char *p, size_t len)
{
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

/* one line (without its newline) into kw, if it is "<index> <name>" */
static void parse_line(struct maildirkw *kw, const char *line, size_t len)
{
	unsigned int idx = 0;
	size_t i = 0;

	if (len == 0 || line[0] < '0' || line[0] > '9')
		return;
	for (; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
		idx = idx * 10 + (unsigned int)(line[i] - '0');
		if (idx >= MAILDIRKW_MAX)
			return;
	}
	if (i >= len || line[i] != ' ' || !name_ok(line + i + 1, len - i - 1))
		return;
	free(kw->names[idx]);
	kw->names[idx] = strndup(line + i + 1, len - i - 1);
}

void maildirkw_parse(struct maildirkw *kw, const char *text, size_t len)
{
	size_t start = 0;

	maildirkw_clear(kw);
	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != '\n')
			continue;
		parse_line(kw, text + start, i - start);
		start = i + 1;
	}
}

char *maildirkw_format(const struct maildirkw *kw, size_t *len_r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	for (unsigned int i = 0; i < MAILDIRKW_MAX; i++) {
		if (kw->names[i] != NULL)
			fprintf(f, "%u %s\n", i, kw->names[i]);
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	*len_r = len;
	return text;
}

const char *maildirkw_name(const struct maildirkw *kw, char c)
{
	if (c < 'a' || c >= 'a' + MAILDIRKW_MAX)
		return NULL;
	return kw->names[c - 'a'];
}

char maildirkw_letter(struct maildirkw *kw, const char *name, bool may_add)
{
	unsigned int free_idx = MAILDIRKW_MAX;

	for (unsigned int i = 0; i < MAILDIRKW_MAX; i++) {
		if (kw->names[i] == NULL) {
			if (free_idx == MAILDIRKW_MAX)
				free_idx = i;
		} else if (strcasecmp(kw->names[i], name) == 0) {
			return (char)('a' + i);
		}
	}
	if (!may_add || free_idx == MAILDIRKW_MAX ||
	    !name_ok(name, strlen(name)) ||
	    (kw->names[free_idx] = strdup(name)) == NULL)
		return 0;
	kw->changed = true;
	return (char)('a' + free_idx);
}

int maildirkw_read(int dir_fd, struct maildirkw *kw)
{
	char *text;
	size_t len;
	int ret;

	maildirkw_clear(kw);
	ret = smallfile_read(dir_fd, MAILDIRKW_FILE, MAILDIRKW_FILE_MAX, &text,
			     &len);
	if (ret > 0)
		maildirkw_parse(kw, text, len);
	free(text);
	return ret < 0 ? -1 : 0;
}

int maildirkw_write(int dir_fd, const struct maildirkw *kw)
{
	size_t len;
	char *text = maildirkw_format(kw, &len);
	int ret, saved;

	if (text == NULL)
		return -1;
	ret = smallfile_rewrite(dir_fd, MAILDIRKW_FILE, text, len);
	saved = errno;
	free(text);
	errno = saved;
	return ret;
}
