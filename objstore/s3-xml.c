/* s3-xml.c: expat-based parsing of S3 reply bodies into a small bounded tree
 * (no DOCTYPE/entities, limited depth, element count and text size), then
 * extraction of the fields each reply type needs, validating every one. */
#include "s3-xml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#define XML_MAX_DEPTH 8
#define XML_MAX_NODES 50000
#define XML_MAX_TEXT 4096
#define XML_MAX_BODY (32 * 1024 * 1024)

struct xnode {
	char *name;
	char *text;
	size_t text_len;
	struct xnode *parent, *children, *last_child, *next;
};

struct xparse {
	XML_Parser parser;
	struct xnode *root, *cur;
	unsigned int depth, nodes;
	const char *error;
};

static void xnode_free(struct xnode *node)
{
	while (node != NULL) {
		struct xnode *next = node->next;

		xnode_free(node->children);
		free(node->name);
		free(node->text);
		free(node);
		node = next;
	}
}

static void xfail(struct xparse *ctx, const char *error)
{
	if (ctx->error == NULL)
		ctx->error = error;
	XML_StopParser(ctx->parser, XML_FALSE);
}

static void XMLCALL x_start(void *context, const XML_Char *name,
			    const XML_Char **attrs)
{
	struct xparse *ctx = context;
	struct xnode *node;

	(void)attrs;
	if (ctx->error != NULL)
		return;
	if (++ctx->depth > XML_MAX_DEPTH) {
		xfail(ctx, "XML nested too deeply");
		return;
	}
	if (++ctx->nodes > XML_MAX_NODES) {
		xfail(ctx, "too many XML elements");
		return;
	}
	if (ctx->cur == NULL && ctx->root != NULL) {
		xfail(ctx, "more than one XML root element");
		return;
	}
	node = calloc(1, sizeof(*node));
	if (node == NULL || (node->name = strdup(name)) == NULL) {
		free(node);
		xfail(ctx, "out of memory");
		return;
	}
	node->parent = ctx->cur;
	if (ctx->cur == NULL) {
		ctx->root = node;
	} else {
		if (ctx->cur->last_child == NULL)
			ctx->cur->children = node;
		else
			ctx->cur->last_child->next = node;
		ctx->cur->last_child = node;
	}
	ctx->cur = node;
}

static void XMLCALL x_end(void *context, const XML_Char *name)
{
	struct xparse *ctx = context;

	(void)name;
	if (ctx->error != NULL || ctx->cur == NULL)
		return;
	ctx->depth--;
	ctx->cur = ctx->cur->parent;
}

static void XMLCALL x_text(void *context, const XML_Char *s, int len)
{
	struct xparse *ctx = context;
	struct xnode *node = ctx->cur;
	char *text;

	if (ctx->error != NULL || node == NULL || len <= 0)
		return;
	if (node->text_len + (size_t)len > XML_MAX_TEXT) {
		xfail(ctx, "XML element text too long");
		return;
	}
	text = realloc(node->text, node->text_len + (size_t)len + 1);
	if (text == NULL) {
		xfail(ctx, "out of memory");
		return;
	}
	memcpy(text + node->text_len, s, (size_t)len);
	node->text_len += (size_t)len;
	text[node->text_len] = '\0';
	node->text = text;
}

static void XMLCALL x_doctype(void *context, const XML_Char *name,
			      const XML_Char *sysid, const XML_Char *pubid,
			      int has_internal_subset)
{
	(void)name; (void)sysid; (void)pubid; (void)has_internal_subset;
	xfail(context, "DOCTYPE not allowed in S3 replies");
}

static struct xnode *xml_parse(const char *body, size_t size,
			       const char **reason_r)
{
	struct xparse ctx;

	memset(&ctx, 0, sizeof(ctx));
	if (size > XML_MAX_BODY) {
		*reason_r = "XML reply too large";
		return NULL;
	}
	ctx.parser = XML_ParserCreate("UTF-8");
	if (ctx.parser == NULL) {
		*reason_r = "out of memory";
		return NULL;
	}
	XML_SetUserData(ctx.parser, &ctx);
	XML_SetElementHandler(ctx.parser, x_start, x_end);
	XML_SetCharacterDataHandler(ctx.parser, x_text);
	XML_SetStartDoctypeDeclHandler(ctx.parser, x_doctype);
	if (XML_Parse(ctx.parser, body, (int)size, XML_TRUE) ==
	    XML_STATUS_ERROR && ctx.error == NULL)
		ctx.error = "malformed XML";
	XML_ParserFree(ctx.parser);
	if (ctx.error == NULL && ctx.root == NULL)
		ctx.error = "empty XML reply";
	if (ctx.error != NULL) {
		xnode_free(ctx.root);
		*reason_r = ctx.error;
		return NULL;
	}
	return ctx.root;
}

static struct xnode *xchild(const struct xnode *node, const char *name)
{
	for (struct xnode *c = node->children; c != NULL; c = c->next) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

/* text of a child element ("" if empty), NULL if missing */
static const char *xchild_text(const struct xnode *node, const char *name)
{
	struct xnode *c = xchild(node, name);

	if (c == NULL)
		return NULL;
	return c->text != NULL ? c->text : "";
}

static char *xstrdup_or_null(const char *str)
{
	return str == NULL ? NULL : strdup(str);
}

void s3_xml_parse_error(const char *body, size_t size,
			struct s3_xml_error *error_r)
{
	const char *reason;
	struct xnode *root;

	memset(error_r, 0, sizeof(*error_r));
	if (size == 0)
		return;
	root = xml_parse(body, size, &reason);
	if (root == NULL)
		return;
	if (strcmp(root->name, "Error") == 0) {
		error_r->code = xstrdup_or_null(xchild_text(root, "Code"));
		error_r->message = xstrdup_or_null(xchild_text(root,
							       "Message"));
	}
	xnode_free(root);
}

void s3_xml_error_free(struct s3_xml_error *error)
{
	free(error->code);
	free(error->message);
	error->code = error->message = NULL;
}

int s3_xml_parse_iso8601(const char *str, time_t *time_r)
{
	struct tm tm;
	int year, mon, day, hour, min, sec, n = 0;

	if (sscanf(str, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour,
		   &min, &sec, &n) != 6 || n != 19)
		return -1;
	str += n;
	if (*str == '.') {
		str++;
		if (*str < '0' || *str > '9')
			return -1;
		while (*str >= '0' && *str <= '9')
			str++;
	}
	if (strcmp(str, "Z") != 0 && strcmp(str, "+00:00") != 0)
		return -1;
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 ||
	    hour > 23 || min > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	*time_r = timegm(&tm);
	return 0;
}

static int parse_u64(const char *str, uint64_t *value_r)
{
	uint64_t value = 0;

	if (*str == '\0')
		return -1;
	for (; *str != '\0'; str++) {
		if (*str < '0' || *str > '9')
			return -1;
		if (value > (UINT64_MAX - 9) / 10)
			return -1;
		value = value * 10 + (uint64_t)(*str - '0');
	}
	*value_r = value;
	return 0;
}

static int list_add(struct s3_xml_list *list, const struct xnode *node,
		    const char **reason_r)
{
	struct s3_xml_list_entry *entry;
	const char *key, *size, *mtime;

	entry = &list->entries[list->count];
	memset(entry, 0, sizeof(*entry));
	if (strcmp(node->name, "CommonPrefixes") == 0) {
		key = xchild_text(node, "Prefix");
		if (key == NULL || *key == '\0') {
			*reason_r = "CommonPrefixes without a Prefix";
			return -1;
		}
		entry->is_prefix = true;
	} else {
		key = xchild_text(node, "Key");
		size = xchild_text(node, "Size");
		mtime = xchild_text(node, "LastModified");
		if (key == NULL || *key == '\0') {
			*reason_r = "Contents without a Key";
			return -1;
		}
		if (size == NULL || parse_u64(size, &entry->size) < 0) {
			*reason_r = "Contents with a missing or bad Size";
			return -1;
		}
		if (mtime == NULL ||
		    s3_xml_parse_iso8601(mtime, &entry->mtime) < 0) {
			*reason_r = "Contents with a missing or bad "
				"LastModified";
			return -1;
		}
	}
	entry->key = strdup(key);
	if (entry->key == NULL) {
		*reason_r = "out of memory";
		return -1;
	}
	list->count++;
	return 0;
}

int s3_xml_parse_list(const char *body, size_t size, struct s3_xml_list *list_r,
		      const char **reason_r)
{
	struct xnode *root;
	const char *trunc, *token;
	unsigned int n = 0;
	int ret = -1;

	memset(list_r, 0, sizeof(*list_r));
	root = xml_parse(body, size, reason_r);
	if (root == NULL)
		return -1;
	if (strcmp(root->name, "ListBucketResult") != 0) {
		*reason_r = "not a ListBucketResult";
		goto out;
	}
	for (struct xnode *c = root->children; c != NULL; c = c->next)
		n++;
	list_r->entries = calloc(n + 1, sizeof(*list_r->entries));
	if (list_r->entries == NULL) {
		*reason_r = "out of memory";
		goto out;
	}
	for (struct xnode *c = root->children; c != NULL; c = c->next) {
		if (strcmp(c->name, "Contents") != 0 &&
		    strcmp(c->name, "CommonPrefixes") != 0)
			continue;
		if (list_add(list_r, c, reason_r) < 0)
			goto out;
	}
	trunc = xchild_text(root, "IsTruncated");
	if (trunc == NULL || strcmp(trunc, "false") == 0) {
		list_r->is_truncated = false;
	} else if (strcmp(trunc, "true") == 0) {
		list_r->is_truncated = true;
	} else {
		*reason_r = "bad IsTruncated value";
		goto out;
	}
	token = xchild_text(root, "NextContinuationToken");
	if (list_r->is_truncated) {
		if (token == NULL || *token == '\0') {
			*reason_r = "IsTruncated without a "
				"NextContinuationToken";
			goto out;
		}
		list_r->next_token = strdup(token);
		if (list_r->next_token == NULL) {
			*reason_r = "out of memory";
			goto out;
		}
	}
	ret = 0;
out:
	xnode_free(root);
	if (ret < 0)
		s3_xml_list_free(list_r);
	return ret;
}

void s3_xml_list_free(struct s3_xml_list *list)
{
	for (unsigned int i = 0; i < list->count; i++)
		free(list->entries[i].key);
	free(list->entries);
	free(list->next_token);
	memset(list, 0, sizeof(*list));
}

int s3_xml_parse_delete_result(const char *body, size_t size,
			       struct s3_xml_delete_result *result_r,
			       const char **reason_r)
{
	struct xnode *root;
	unsigned int n = 0;
	int ret = -1;

	memset(result_r, 0, sizeof(*result_r));
	root = xml_parse(body, size, reason_r);
	if (root == NULL)
		return -1;
	if (strcmp(root->name, "DeleteResult") != 0) {
		*reason_r = "not a DeleteResult";
		goto out;
	}
	for (struct xnode *c = root->children; c != NULL; c = c->next)
		n++;
	result_r->errors = calloc(n + 1, sizeof(*result_r->errors));
	if (result_r->errors == NULL) {
		*reason_r = "out of memory";
		goto out;
	}
	for (struct xnode *c = root->children; c != NULL; c = c->next) {
		struct s3_xml_delete_error *err;
		const char *key, *code, *message;

		if (strcmp(c->name, "Error") != 0)
			continue;
		key = xchild_text(c, "Key");
		code = xchild_text(c, "Code");
		message = xchild_text(c, "Message");
		if (key == NULL || code == NULL) {
			*reason_r = "DeleteResult Error without Key or Code";
			goto out;
		}
		err = &result_r->errors[result_r->error_count++];
		err->key = strdup(key);
		err->code = strdup(code);
		err->message = strdup(message != NULL ? message : "");
		if (err->key == NULL || err->code == NULL ||
		    err->message == NULL) {
			*reason_r = "out of memory";
			goto out;
		}
	}
	ret = 0;
out:
	xnode_free(root);
	if (ret < 0)
		s3_xml_delete_result_free(result_r);
	return ret;
}

void s3_xml_delete_result_free(struct s3_xml_delete_result *result)
{
	for (unsigned int i = 0; i < result->error_count; i++) {
		free(result->errors[i].key);
		free(result->errors[i].code);
		free(result->errors[i].message);
	}
	free(result->errors);
	memset(result, 0, sizeof(*result));
}

int s3_xml_check_copy_result(const char *body, size_t size,
			     struct s3_xml_error *error_r)
{
	const char *reason;
	struct xnode *root;
	int ret = -1;

	memset(error_r, 0, sizeof(*error_r));
	root = xml_parse(body, size, &reason);
	if (root == NULL) {
		error_r->code = strdup("InvalidReply");
		error_r->message = strdup(reason);
		return -1;
	}
	if (strcmp(root->name, "CopyObjectResult") == 0) {
		ret = 0;
	} else if (strcmp(root->name, "Error") == 0) {
		error_r->code = xstrdup_or_null(xchild_text(root, "Code"));
		error_r->message = xstrdup_or_null(xchild_text(root,
							       "Message"));
		if (error_r->code == NULL)
			error_r->code = strdup("InternalError");
	} else {
		error_r->code = strdup("InvalidReply");
		error_r->message = strdup("reply is neither CopyObjectResult "
					  "nor Error");
	}
	xnode_free(root);
	return ret;
}

char *s3_xml_escape(const char *str)
{
	size_t len = strlen(str);
	char *out = malloc(len * 6 + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (; *str != '\0'; str++) {
		switch (*str) {
		case '&': memcpy(p, "&amp;", 5); p += 5; break;
		case '<': memcpy(p, "&lt;", 4); p += 4; break;
		case '>': memcpy(p, "&gt;", 4); p += 4; break;
		case '"': memcpy(p, "&quot;", 6); p += 6; break;
		case '\'': memcpy(p, "&apos;", 6); p += 6; break;
		default: *p++ = *str; break;
		}
	}
	*p = '\0';
	return out;
}
