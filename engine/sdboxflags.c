/* sdboxflags.c: see sdboxflags.h.  What is read of dovecot.index
 * (dovecotfmt.h has the header and the extension list): the "keywords"
 * extension's header data, {count 32} then count {unused 32, name_offset
 * 32} and the NUL-terminated names, and in every record its bitmap (bit
 * i: keyword i); the records from header_size, messages_count of
 * record_size bytes: uid (32 bits), flags (8 bits).
 * Of the logs, after the index's (log_file_seq, log_file_head_offset):
 *   APPEND: records of 8 bytes {uid, flags};
 *   FLAG_UPDATE: {uid1, uid2, add, remove, modseq, padding} entries;
 *   KEYWORD_UPDATE: {modify_type 8, padding 8, name_size 16}, the name,
 *     padding to 4 bytes, then {uid1, uid2} pairs;
 *   KEYWORD_RESET: {uid1, uid2} pairs. */
#include "sdboxflags.h"
#include "bundle.h"
#include "dovecotfmt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* bounds for what a hostile file can make this hold */
#define SDBOXFLAGS_MAILS_MAX (2U * 1024 * 1024)
#define SDBOXFLAGS_INDEX_MAX_BYTES (256U * 1024 * 1024)
/* mails the logs' ranges may touch in all: a real log touches each mail
   a few times; a hostile one ({1, 2^32 - 1} again and again) stops here */
#define SDBOXFLAGS_WORK_MAX (64U * 1024 * 1024)
#define KEYWORD_NAME_MAX 127
#define ALIGN4(n) (((n) + 3) & ~(size_t)3)

/* an IMAP atom (RFC 3501 flag-keyword): what Dovecot accepts as a
   keyword; anything else from a file is not taken */
static bool keyword_valid(const unsigned char *name, size_t len)
{
	if (len == 0 || len > KEYWORD_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] <= 0x20 || name[i] >= 0x7f ||
		    strchr("(){%*\"\\]", name[i]) != NULL)
			return false;
	}
	return true;
}

/* the index of keyword name (compared without case, as Dovecot's own
   list: one keyword, however spelt), added if new; -1 if invalid or the
   list is full */
static int keyword_add(struct sdboxflags *f, const unsigned char *name,
		       size_t len)
{
	char *copy;

	if (!keyword_valid(name, len))
		return -1;
	for (unsigned int i = 0; i < f->keyword_count; i++) {
		if (strlen(f->keywords[i]) == len &&
		    strncasecmp(f->keywords[i], (const char *)name, len) == 0)
			return (int)i;
	}
	if (f->keyword_count >= SDBOXFLAGS_KEYWORDS_MAX)
		return -1;
	copy = strndup((const char *)name, len);
	if (copy == NULL)
		abort();
	f->keywords[f->keyword_count] = copy;
	return (int)f->keyword_count++;
}

int sdboxflags_keyword_index(const struct sdboxflags *f, const char *name)
{
	for (unsigned int i = 0; i < f->keyword_count; i++) {
		if (strcasecmp(f->keywords[i], name) == 0)
			return (int)i;
	}
	return -1;
}

int sdboxflags_has_keyword(const struct sdboxflags_mail *mail, unsigned int i)
{
	return i < SDBOXFLAGS_KEYWORDS_MAX &&
		(mail->keywords[i / 64] & (UINT64_C(1) << (i % 64))) != 0;
}

static void keyword_set(struct sdboxflags_mail *mail, unsigned int i,
			bool on)
{
	if (on)
		mail->keywords[i / 64] |= UINT64_C(1) << (i % 64);
	else
		mail->keywords[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

/* the first mail with a uid >= uid */
static size_t lower_bound(const struct sdboxflags *f, uint32_t uid)
{
	size_t lo = 0, hi = f->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->mails[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct sdboxflags_mail *sdboxflags_find(const struct sdboxflags *f,
					      uint32_t uid)
{
	size_t i = lower_bound(f, uid);

	return i < f->count && f->mails[i].uid == uid ? &f->mails[i] : NULL;
}

/* a new mail uid (without flags) after every mail f has: NULL if uid is
   not above them (an index or log out of order is damaged: Dovecot gives
   UIDs in ascending order) or the bound is reached */
static struct sdboxflags_mail *mail_append(struct sdboxflags *f, uint32_t uid)
{
	if (uid == 0 || (f->count > 0 && f->mails[f->count - 1].uid >= uid) ||
	    f->count >= SDBOXFLAGS_MAILS_MAX)
		return NULL;
	if (f->count == f->alloc) {
		size_t alloc = f->alloc == 0 ? 64 : f->alloc * 2;
		struct sdboxflags_mail *m =
			realloc(f->mails, alloc * sizeof(*m));

		if (m == NULL)
			abort();
		f->mails = m;
		f->alloc = alloc;
	}
	memset(&f->mails[f->count], 0, sizeof(f->mails[0]));
	f->mails[f->count].uid = uid;
	return &f->mails[f->count++];
}

/* the index's "keywords" extension header: its names, mapped to f's
   indexes into map (-1: not taken) */
static void index_keyword_names(struct sdboxflags *f, const unsigned char *d,
				size_t size, int map[SDBOXFLAGS_KEYWORDS_MAX],
				unsigned int *map_count)
{
	uint32_t count;
	size_t names;

	*map_count = 0;
	if (size < 4)
		return;
	count = dovecotfmt_u32(d);
	if (count > (size - 4) / 8)
		return;
	names = 4 + (size_t)count * 8;
	for (uint32_t i = 0; i < count && i < SDBOXFLAGS_KEYWORDS_MAX; i++) {
		uint32_t off = dovecotfmt_u32(d + 4 + (size_t)i * 8 + 4);
		const unsigned char *name, *nul;

		if (off >= size - names)
			break;
		name = d + names + off;
		nul = memchr(name, '\0', size - names - off);
		if (nul == NULL)
			break;
		map[(*map_count)++] = keyword_add(f, name, (size_t)(nul - name));
	}
}

struct kw_ext {
	struct sdboxflags *f;
	int map[SDBOXFLAGS_KEYWORDS_MAX];
	unsigned int count;
	size_t rec_off, rec_size;
};

static bool kw_ext_cb(const struct dovecotfmt_ext *ext, void *context)
{
	struct kw_ext *kw = context;

	if (!dovecotfmt_ext_is(ext, "keywords"))
		return true;
	index_keyword_names(kw->f, ext->data, ext->data_size, kw->map,
			    &kw->count);
	kw->rec_off = ext->record_offset;
	kw->rec_size = ext->record_size;
	return false;
}

/* dovecot.index: 1 with its log position, 0 if it is not one */
static int parse_index(struct sdboxflags *f, const unsigned char *d,
		       size_t size, uint32_t *seq_r, uint32_t *head_r)
{
	struct kw_ext kw = { .f = f };
	struct dovecotfmt_index index;
	size_t count;

	if (!dovecotfmt_index_open(&index, d, size))
		return 0;
	dovecotfmt_index_exts(&index, kw_ext_cb, &kw);
	count = index.messages;
	if (count > (size - index.header_size) / index.record_size)
		count = (size - index.header_size) / index.record_size;
	for (size_t i = 0; i < count; i++) {
		const unsigned char *rec =
			d + index.header_size + i * index.record_size;
		struct sdboxflags_mail *mail =
			mail_append(f, dovecotfmt_u32(rec));

		if (mail == NULL) {
			f->incomplete = true;
			break;	/* out of order: damaged */
		}
		mail->flags = rec[4] & DOVECOTFMT_MAIL_FLAGS;
		for (size_t b = 0; b < kw.rec_size; b++) {
			for (unsigned int bit = 0; bit < 8; bit++) {
				size_t k = b * 8 + bit;

				if ((rec[kw.rec_off + b] & (1U << bit)) != 0 &&
				    k < kw.count && kw.map[k] >= 0)
					keyword_set(mail, (unsigned int)kw.map[k],
						    true);
			}
		}
	}
	*seq_r = index.log_file_seq;
	*head_r = index.log_head_offset;
	return 1;
}

/* the mails uid1..uid2 that f has: fn(mail, arg) each */
static void each_in_range(struct sdboxflags *f, uint32_t uid1, uint32_t uid2,
			  void (*fn)(struct sdboxflags_mail *, uint32_t),
			  uint32_t arg)
{
	if (uid1 == 0 || uid1 > uid2 || f->incomplete)
		return;
	for (size_t i = lower_bound(f, uid1);
	     i < f->count && f->mails[i].uid <= uid2; i++) {
		if (++f->work > SDBOXFLAGS_WORK_MAX) {
			f->incomplete = true;
			return;
		}
		fn(&f->mails[i], arg);
	}
}

/* arg: add flags in the low byte, remove flags in the next */
static void flags_update(struct sdboxflags_mail *mail, uint32_t arg)
{
	mail->flags = (uint8_t)((mail->flags & ~(arg >> 8)) | (arg & 0xff)) &
		DOVECOTFMT_MAIL_FLAGS;
}

/* arg: the keyword's index, bit 31 set to add it */
static void keyword_update(struct sdboxflags_mail *mail, uint32_t arg)
{
	keyword_set(mail, arg & 0xffff, (arg & 0x80000000U) != 0);
}

static void keywords_reset(struct sdboxflags_mail *mail, uint32_t arg)
{
	(void)arg;
	memset(mail->keywords, 0, sizeof(mail->keywords));
}

static void log_record(struct sdboxflags *f, const struct dovecotfmt_rec *r)
{
	const unsigned char *b = r->body;
	size_t i, name_size;
	int kw;

	switch (r->type & DOVECOTFMT_TYPE_MASK) {
	case DOVECOTFMT_APPEND:
		for (i = 0; i + DOVECOTFMT_APPEND_RECORD_SIZE <= r->size;
		     i += DOVECOTFMT_APPEND_RECORD_SIZE) {
			struct sdboxflags_mail *mail =
				mail_append(f, dovecotfmt_u32(b + i));

			/* a UID not above every one: a damaged log, or one
			   the index has already (replayed twice) */
			if (mail != NULL)
				mail->flags = b[i + 4] & DOVECOTFMT_MAIL_FLAGS;
		}
		break;
	case DOVECOTFMT_FLAG_UPDATE:
		for (i = 0; i + DOVECOTFMT_FLAG_UPDATE_SIZE <= r->size;
		     i += DOVECOTFMT_FLAG_UPDATE_SIZE)
			each_in_range(f, dovecotfmt_u32(b + i),
				      dovecotfmt_u32(b + i + 4), flags_update,
				      b[i + 8] | ((uint32_t)b[i + 9] << 8));
		break;
	case DOVECOTFMT_KEYWORD_UPDATE:
		if (r->size < 4)
			break;
		name_size = dovecotfmt_u16(b + 2);
		if (name_size > r->size - 4 ||
		    (b[0] != DOVECOTFMT_MODIFY_ADD &&
		     b[0] != DOVECOTFMT_MODIFY_REMOVE) ||
		    (kw = keyword_add(f, b + 4, name_size)) < 0)
			break;
		for (i = ALIGN4(4 + name_size); i + 8 <= r->size; i += 8)
			each_in_range(f, dovecotfmt_u32(b + i),
				      dovecotfmt_u32(b + i + 4), keyword_update,
				      (uint32_t)kw |
				      (b[0] == DOVECOTFMT_MODIFY_ADD ?
				       0x80000000U : 0));
		break;
	case DOVECOTFMT_KEYWORD_RESET:
		for (i = 0; i + 8 <= r->size; i += 8)
			each_in_range(f, dovecotfmt_u32(b + i),
				      dovecotfmt_u32(b + i + 4),
				      keywords_reset, 0);
		break;
	default:
		break;
	}
}

/* a log's records; with an index, only those after its position */
static void replay(struct sdboxflags *f, const struct dovecotfmt_log *log_in,
		   bool have_index, uint32_t seq, uint32_t head)
{
	struct dovecotfmt_log log = *log_in;
	struct dovecotfmt_rec rec;

	if (log.data == NULL)
		return;
	if (have_index) {
		if (log.file_seq < seq)
			return;
		if (log.file_seq == seq && !dovecotfmt_log_seek(&log, head))
			return;
	}
	while (dovecotfmt_log_next(&log, &rec) > 0)
		log_record(f, &rec);
}

void sdboxflags_parse(struct sdboxflags *f, const unsigned char *index,
		      size_t index_size, const unsigned char *log2,
		      size_t log2_size, const unsigned char *log,
		      size_t log_size)
{
	struct dovecotfmt_log l2 = { 0 }, l1 = { 0 };
	uint32_t seq = 0, head = 0;
	bool have_index;

	memset(f, 0, sizeof(*f));
	have_index = parse_index(f, index, index_size, &seq, &head) > 0;
	if (log2 == NULL || dovecotfmt_log_open(&l2, log2, log2_size) < 0)
		memset(&l2, 0, sizeof(l2));
	if (log == NULL || dovecotfmt_log_open(&l1, log, log_size) < 0)
		memset(&l1, 0, sizeof(l1));
	/* .log.2 is the older one; a stale one (not older) is not read */
	if (l2.data != NULL && (l1.data == NULL || l2.file_seq < l1.file_seq))
		replay(f, &l2, have_index, seq, head);
	replay(f, &l1, have_index, seq, head);
}

int sdboxflags_read(int dbox_fd, struct sdboxflags *f)
{
	static const char *const names[] = {
		"dovecot.index", "dovecot.index.log.2", "dovecot.index.log"
	};
	unsigned char *data[3] = { NULL, NULL, NULL };
	size_t size[3] = { 0, 0, 0 };
	int ret = 0;

	memset(f, 0, sizeof(*f));
	for (unsigned int i = 0; i < 3 && ret == 0; i++) {
		if (dovecotfmt_read_file(dbox_fd, names[i], i == 0 ?
					 SDBOXFLAGS_INDEX_MAX_BYTES :
					 DOVECOTFMT_LOG_MAX_BYTES,
					 &data[i], &size[i]) < 0)
			ret = -1;
	}
	if (ret == 0)
		sdboxflags_parse(f, data[0], size[0], data[1], size[1],
				 data[2], size[2]);
	int saved = errno;

	for (unsigned int i = 0; i < 3; i++)
		free(data[i]);
	errno = saved;
	return ret;
}

/* tree's copy of dir/name: its bytes, or NULL */
static const unsigned char *tree_file(const struct bundle_tree *tree,
				      const char *dir, const char *name,
				      size_t *size_r)
{
	char path[BUNDLE_PATH_MAX + 32];
	const struct bundle_entry *e;

	*size_r = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s%s%s", dir,
			     dir[0] == '\0' ? "" : "/", name) >= sizeof(path))
		return NULL;
	e = bundle_tree_find(tree, path);
	if (e == NULL || e->type != BUNDLE_ENTRY_FILE || e->data == NULL)
		return NULL;
	*size_r = (size_t)e->size;
	return e->data;
}

void sdboxflags_from_tree(const struct bundle_tree *tree, const char *dir,
			  struct sdboxflags *f)
{
	size_t s0, s1, s2;
	const unsigned char *index = tree_file(tree, dir, "dovecot.index", &s0);
	const unsigned char *log2 = tree_file(tree, dir, "dovecot.index.log.2",
					      &s1);
	const unsigned char *log = tree_file(tree, dir, "dovecot.index.log",
					     &s2);

	sdboxflags_parse(f, index, s0, log2, s1, log, s2);
}

void sdboxflags_free(struct sdboxflags *f)
{
	for (unsigned int i = 0; i < f->keyword_count; i++)
		free(f->keywords[i]);
	free(f->mails);
	memset(f, 0, sizeof(*f));
}
