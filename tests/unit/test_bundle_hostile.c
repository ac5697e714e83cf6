/* test_bundle_hostile.c: bundle_decode() on hostile input: a table of
 * hand-built bundles (written from docs/bundle-format.md, not with the
 * library's encoder) that each break one rule, every truncation, every
 * flipped byte with the checksum recomputed, and the size limit. */
#include "bundle.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "b5/899/u/mailboxes/00d7d12ea08a3153175e0000dfbea952/" \
	"d88ff1001d4bf753a1b800001accfe22"
#define GUID "00d7d12ea08a3153175e0000dfbea952"
#define HDR 128
#define REC 56

struct rec_spec {
	/* 1 dir 2 file 3 stub 4 link 5 append 6 patch 7 symlink 8 fifo
	   9 socket 10 char device 11 block device */
	uint8_t kind;
	/* arrays, not pointers: criterion runs each case in a new process */
	char path[8];		/* "": path_len bytes of 'a' */
	uint16_t path_len;	/* 0: strlen(path) */
	char key[100];
	uint32_t mode, uid, nsec, link_id;
	/* devices: major | minor << 32 (where others have size) */
	uint64_t size, old_size;
	uint8_t flags;
	/* kind 6 (patch): the range count and the ranges' bytes */
	uint32_t ranges;
	char patch[48];
	uint8_t patch_len;
};

struct hcase {
	char name[40];
	uint8_t kind;
	uint32_t seq;
	struct rec_spec recs[3];
	unsigned int nrecs;
	char dels[2][8];
	unsigned int ndels;
	/* after building, write patch_val (patch_width bytes, LE) here */
	int patch_off;
	unsigned int patch_width;
	uint64_t patch_val;
	unsigned int garbage;
	/* header version (0: 1) and, from 2, the mail watermark */
	uint16_t version;
	uint32_t mark_secs, mark_usecs;
	/* "": must decode; else a substring of the error */
	char expect[40];
};

struct raw {
	unsigned char *d;
	size_t len;
};

static void raw_put(struct raw *r, const void *p, size_t n)
{
	r->d = realloc(r->d, r->len + n + 1);
	cr_assert_not_null(r->d);
	if (n > 0)
		memcpy(r->d + r->len, p, n);
	r->len += n;
}

static void le(unsigned char *p, uint64_t v, unsigned int width)
{
	for (unsigned int i = 0; i < width; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void raw_fill(struct raw *r, int c, size_t n)
{
	unsigned char *buf = malloc(n + 1);

	memset(buf, c, n);
	raw_put(r, buf, n);
	free(buf);
}

static void build(const struct hcase *c, struct raw *r)
{
	unsigned char h[HDR] = "OBOXBNDL", digest[32];
	uint64_t data_bytes = 0;

	r->d = NULL;
	r->len = 0;
	le(h + 8, c->version != 0 ? c->version : 1, 2);
	le(h + 112, c->mark_secs, 4);
	le(h + 116, c->mark_usecs, 4);
	h[10] = c->kind;
	le(h + 12, c->seq, 4);
	le(h + 16, 0x53f74dc2, 4);
	le(h + 20, 0x0fbcf, 4);
	memset(h + 24, 0x11, 16);
	if (c->kind == 2) {
		memset(h + 40, 0x22, 16);
		le(h + 56, 7, 4);
		memset(h + 64, 0x33, 32);
	}
	le(h + 96, c->nrecs, 4);
	le(h + 100, c->ndels, 4);
	raw_put(r, h, HDR);
	for (unsigned int i = 0; i < c->nrecs; i++) {
		const struct rec_spec *s = &c->recs[i];
		unsigned char rec[REC] = { 0 };
		size_t path_len = s->path_len != 0 ? s->path_len :
			strlen(s->path);
		size_t key_len = strlen(s->key);
		uint64_t data = s->kind == 2 || s->kind == 7 ? s->size :
			s->kind == 5 ? s->size - s->old_size : 0;
		bool patch = s->kind == 6;

		rec[0] = s->kind;
		rec[1] = s->flags;
		le(rec + 2, path_len, 2);
		le(rec + 4, key_len, 2);
		le(rec + 8, s->mode, 4);
		le(rec + 12, s->uid, 4);
		le(rec + 20, s->nsec, 4);
		le(rec + 24, 1400000000, 8);
		le(rec + 32, s->link_id, 4);
		le(rec + 40, s->size, 8);
		le(rec + 48, s->old_size, 8);
		le(rec + 36, s->ranges, 4);
		if (s->kind == 4) /* link: nothing but path and id */
			memset(rec + 4, 0, 28);
		raw_put(r, rec, REC);
		if (s->path[0] != '\0')
			raw_put(r, s->path, path_len);
		else
			raw_fill(r, 'a', path_len);
		raw_put(r, s->key, key_len);
		if (patch) {
			raw_put(r, s->patch, s->patch_len);
			data_bytes += s->patch_len;
		} else {
			raw_fill(r, 'x', data);
			data_bytes += data;
		}
	}
	for (unsigned int i = 0; i < c->ndels; i++) {
		unsigned char len[2];

		le(len, strlen(c->dels[i]), 2);
		raw_put(r, len, 2);
		raw_put(r, c->dels[i], strlen(c->dels[i]));
	}
	raw_fill(r, 0, c->garbage);
	le(r->d + 104, data_bytes, 8);
	if (c->patch_width != 0)
		le(r->d + c->patch_off, c->patch_val, c->patch_width);
	SHA256(r->d, r->len, digest);
	raw_put(r, digest, 32);
}

/* patch range headers: offset (8 bytes LE), length (4) */
#define R0_4 "\x00\x00\x00\x00\x00\x00\x00\x00" "\x04\x00\x00\x00"
#define R0_1 "\x00\x00\x00\x00\x00\x00\x00\x00" "\x01\x00\x00\x00"
#define R60_2 "\x3c\x00\x00\x00\x00\x00\x00\x00" "\x02\x00\x00\x00"
#define R98_4 "\x62\x00\x00\x00\x00\x00\x00\x00" "\x04\x00\x00\x00"
#define R2_2 "\x02\x00\x00\x00\x00\x00\x00\x00" "\x02\x00\x00\x00"
#define R5_0 "\x05\x00\x00\x00\x00\x00\x00\x00" "\x00\x00\x00\x00"
#define R96_4 "\x60\x00\x00\x00\x00\x00\x00\x00" "\x04\x00\x00\x00"
/* a patch of "f" (100 bytes in the base), rewritten in place */
#define PATCH_REC(n, bytes) { .kind = 6, .path = "f", .size = 100, \
	.old_size = 100, .ranges = n, .patch = bytes, \
	.patch_len = sizeof(bytes) - 1 }
/* a patch of "f" growing it from old to 100 bytes */
#define PATCH_GROW(old, n, bytes) { .kind = 6, .path = "f", .size = 100, \
	.old_size = old, .ranges = n, .patch = bytes, \
	.patch_len = sizeof(bytes) - 1 }
#define DIR_AB { .kind = 1, .path = "ab", .mode = 0700 }
#define SYMLINK(p, n) { .kind = 7, .path = p, .mode = 0777, .size = n }
#define FILE_F(p) { .kind = 2, .path = p, .mode = 0600, .size = 5 }
#define BASE(...) .kind = 1, .recs = { __VA_ARGS__ }
#define DIFF(...) .kind = 2, .seq = 1, .recs = { __VA_ARGS__ }
#define PATCH(off, width, val) .patch_off = off, .patch_width = width, \
	.patch_val = val

ParameterizedTestParameters(bundle_hostile, table)
{
	static struct hcase cases[] = {
		{ "valid base", BASE(DIR_AB, FILE_F("ab/c"), { .kind = 3,
		  .path = "ab/s", .key = KEY, .size = 9 }), .nrecs = 3 },
		{ "valid diff", DIFF({ .kind = 5, .path = "f", .size = 9,
		  .old_size = 4 }), .nrecs = 1, .dels = { "a", "g" },
		  .ndels = 2 },
		{ "bad magic", BASE(DIR_AB), .nrecs = 1, PATCH(0, 1, 'X'),
		  .expect = "magic" },
		{ "valid patch", DIFF(PATCH_REC(2, R0_4 "abcd" R60_2
		  "yz")), .nrecs = 1 },
		{ "valid patch growing by its ranges", DIFF(PATCH_GROW(96, 2,
		  R0_4 "abcd" R96_4 "wxyz")), .nrecs = 1 },
		/* fuzz_bundle_apply: a few bytes made a file of any size */
		{ "patch growing past its ranges", DIFF(PATCH_GROW(50, 2,
		  R0_4 "abcd" R60_2 "yz")), .nrecs = 1,
		  .expect = "patch grows the file" },
		{ "patch in a base", BASE(PATCH_REC(1, R0_4 "abcd")),
		  .nrecs = 1, .expect = "kind" },
		{ "patch without ranges", DIFF(PATCH_REC(0, "")), .nrecs = 1,
		  .expect = "patch range count" },
		{ "patch range past the size", DIFF(PATCH_REC(1, R98_4
		  "abcd")), .nrecs = 1, .expect = "invalid patch range" },
		{ "patch ranges overlap", DIFF(PATCH_REC(2, R0_4 "abcd"
		  R2_2 "yz")), .nrecs = 1, .expect = "invalid patch range" },
		{ "patch range empty", DIFF(PATCH_REC(1, R5_0)), .nrecs = 1,
		  .expect = "invalid patch range" },
		{ "patch range truncated", DIFF(PATCH_REC(2, R0_4 "abcd"
		  "\1\0\0")), .nrecs = 1, .expect = "truncated" },
		{ "patch of an empty file", DIFF({ .kind = 6, .path = "f",
		  .size = 100, .ranges = 1, .patch = R0_1 "a",
		  .patch_len = 13 }), .nrecs = 1, .expect = "old size" },
		{ "patch range count too big", DIFF({ .kind = 6, .path = "f",
		  .size = 100, .old_size = 50, .ranges = 0x7fffffff,
		  .patch = R0_1 "a", .patch_len = 13 }), .nrecs = 1,
		  .expect = "patch range count" },
		{ "version 4", BASE(DIR_AB), .nrecs = 1, PATCH(8, 2, 4),
		  .expect = "version" },
		{ "v3 base with a parent", BASE(DIR_AB), .nrecs = 1,
		  .version = 3, PATCH(40, 8, 0x1122334455667788) },
		{ "v2 base with a parent", BASE(DIR_AB), .nrecs = 1,
		  .version = 2, PATCH(40, 8, 0x1122334455667788),
		  .expect = "diff header" },
		{ "v3 parent diff id without its base", BASE(DIR_AB),
		  .nrecs = 1, .version = 3, PATCH(64, 8, 1),
		  .expect = "diff header" },
		{ "v3 base digest's second half", BASE(DIR_AB), .nrecs = 1,
		  .version = 3, PATCH(80, 1, 1), .expect = "diff header" },
		{ "v3 parent usecs", BASE(DIR_AB), .nrecs = 1, .version = 3,
		  PATCH(60, 4, 1000000), .expect = "usecs" },
		{ "version 0", BASE(DIR_AB), .nrecs = 1, PATCH(8, 2, 0),
		  .expect = "version" },
		{ "v2 with watermark", BASE(DIR_AB), .nrecs = 1,
		  .version = 2, .mark_secs = 0x53f74dc2,
		  .mark_usecs = 0x0fbcf },
		{ "v2 without watermark", BASE(DIR_AB), .nrecs = 1,
		  .version = 2 },
		{ "v1 with watermark", BASE(DIR_AB), .nrecs = 1,
		  .mark_secs = 5, .expect = "reserved" },
		{ "watermark after bundle", BASE(DIR_AB), .nrecs = 1,
		  .version = 2, .mark_secs = 0x53f74dc2,
		  .mark_usecs = 0x0fbd0, .expect = "later" },
		{ "watermark usecs", BASE(DIR_AB), .nrecs = 1, .version = 2,
		  .mark_secs = 1, .mark_usecs = 1000000, .expect = "usecs" },
		{ "v2 header reserved", BASE(DIR_AB), .nrecs = 1,
		  .version = 2, PATCH(120, 1, 1), .expect = "reserved" },
		{ "kind 3", BASE(DIR_AB), .nrecs = 1, PATCH(10, 1, 3),
		  .expect = "kind" },
		{ "header flags", BASE(DIR_AB), .nrecs = 1, PATCH(11, 1, 1),
		  .expect = "reserved" },
		{ "header reserved", BASE(DIR_AB), .nrecs = 1,
		  PATCH(127, 1, 1), .expect = "reserved" },
		{ "base with seq", BASE(DIR_AB), .nrecs = 1, PATCH(12, 4, 1),
		  .expect = "diff header" },
		{ "base with base id", BASE(DIR_AB), .nrecs = 1,
		  PATCH(40, 1, 1), .expect = "diff header" },
		{ "diff seq 0", DIFF(DIR_AB), .nrecs = 1, PATCH(12, 4, 0),
		  .expect = "sequence 0" },
		{ "usecs 1000000", BASE(DIR_AB), .nrecs = 1,
		  PATCH(20, 4, 1000000), .expect = "usecs" },
		{ "huge entry count", BASE(DIR_AB), .nrecs = 1,
		  PATCH(96, 4, 0xffffffff), .expect = "do not fit" },
		{ "entry count + 1", BASE(DIR_AB), .nrecs = 1,
		  PATCH(96, 4, 2), .expect = "do not fit" },
		{ "huge delete count", DIFF(DIR_AB), .nrecs = 1,
		  PATCH(100, 4, 0x10000000), .expect = "do not fit" },
		{ "deletes in a base", BASE(DIR_AB, FILE_F("ab/c")),
		  .nrecs = 2, PATCH(100, 4, 1), .expect = "do not fit" },
		{ "content bytes + 1", BASE(FILE_F("f")), .nrecs = 1,
		  PATCH(104, 8, 6), .expect = "add up" },
		{ "huge content bytes", BASE(FILE_F("f")), .nrecs = 1,
		  PATCH(104, 8, UINT64_MAX), .expect = "do not fit" },
		{ "garbage after records", BASE(DIR_AB), .nrecs = 1,
		  .garbage = 3, .expect = "garbage" },
		{ "record kind 0", BASE({ .kind = 0, .path = "ab" }),
		  .nrecs = 1, .expect = "invalid kind" },
		{ "record kind 12", BASE({ .kind = 12, .path = "ab" }),
		  .nrecs = 1, .expect = "invalid kind" },
		/* special files */
		{ "valid special files", BASE({ .kind = 10, .path = "c",
		  .size = 1 | 3ULL << 32 }, SYMLINK("l", 4), { .kind = 8,
		  .path = "p" }), .nrecs = 3 },
		{ "valid block device, socket", BASE({ .kind = 11,
		  .path = "b", .size = 0xfff | 0xfffffULL << 32 },
		  { .kind = 9, .path = "s", .mode = 0755 }), .nrecs = 2 },
		{ "valid symlink in a diff", DIFF(SYMLINK("l", 4095)),
		  .nrecs = 1 },
		{ "symlink without target", BASE(SYMLINK("l", 0)), .nrecs = 1,
		  .expect = "invalid symlink target" },
		{ "symlink target of PATH_MAX", BASE(SYMLINK("l", 4096)),
		  .nrecs = 1, .expect = "symlink target of 4096" },
		{ "symlink target huge", BASE(SYMLINK("l", 4)), .nrecs = 1,
		  PATCH(HDR + 40, 8, 1ULL << 40),
		  .expect = "symlink target of" },
		{ "symlink target with NUL", BASE(SYMLINK("l", 4)), .nrecs = 1,
		  PATCH(HDR + REC + 1 + 2, 1, 0),
		  .expect = "invalid symlink target" },
		{ "symlink with key", BASE({ .kind = 7, .path = "l",
		  .key = GUID, .size = 4 }), .nrecs = 1,
		  .expect = "key length" },
		{ "symlink with old size", BASE({ .kind = 7, .path = "l",
		  .size = 4, .old_size = 2 }), .nrecs = 1,
		  .expect = "old size" },
		{ "symlink with link id", BASE({ .kind = 7, .path = "l",
		  .size = 4, .link_id = 1 }, { .kind = 4, .path = "m",
		  .link_id = 1 }), .nrecs = 2, .expect = "invalid link id" },
		{ "fifo with link id", BASE({ .kind = 8, .path = "l",
		  .link_id = 1 }, { .kind = 4, .path = "m", .link_id = 1 }),
		  .nrecs = 2, .expect = "invalid link id" },
		{ "fifo with size", BASE({ .kind = 8, .path = "p",
		  .size = 5 }), .nrecs = 1, .expect = "content" },
		{ "socket with rdev", BASE({ .kind = 9, .path = "s",
		  .size = 1 | 3ULL << 32 }), .nrecs = 1, .expect = "content" },
		{ "fifo with key", BASE({ .kind = 8, .path = "p",
		  .key = GUID }), .nrecs = 1, .expect = "key length" },
		{ "type bits in fifo mode", BASE({ .kind = 8, .path = "p",
		  .mode = 010600 }), .nrecs = 1, .expect = "invalid mode" },
		{ "chr type bits in device mode", BASE({ .kind = 10,
		  .path = "c", .mode = 020600 }), .nrecs = 1,
		  .expect = "invalid mode" },
		{ "device major over 12 bits", BASE({ .kind = 10, .path = "c",
		  .size = 0x1000 }), .nrecs = 1,
		  .expect = "invalid device number" },
		{ "device minor over 20 bits", BASE({ .kind = 11, .path = "b",
		  .size = 0x100000ULL << 32 }), .nrecs = 1,
		  .expect = "invalid device number" },
		{ "device with old size", BASE({ .kind = 10, .path = "c",
		  .old_size = 1 }), .nrecs = 1, .expect = "old size" },
		{ "device under a symlink", BASE(SYMLINK("l", 4), { .kind = 10,
		  .path = "l/c" }), .nrecs = 2,
		  .expect = "parent is not a directory" },
		{ "file under a fifo", BASE({ .kind = 8, .path = "p" },
		  FILE_F("p/f")), .nrecs = 2,
		  .expect = "parent is not a directory" },
		{ "append in a base", BASE({ .kind = 5, .path = "f", .size = 9,
		  .old_size = 4 }), .nrecs = 1, .expect = "invalid kind" },
		{ "record flags", BASE({ .kind = 1, .path = "ab",
		  .flags = 1 }), .nrecs = 1, .expect = "reserved" },
		{ "record reserved", BASE(DIR_AB), .nrecs = 1,
		  PATCH(HDR + 36, 4, 1), .expect = "reserved" },
		{ "path ..", BASE({ .kind = 1, .path = ".." }), .nrecs = 1,
		  .expect = "invalid path" },
		{ "path .", BASE({ .kind = 1, .path = "." }), .nrecs = 1,
		  .expect = "invalid path" },
		{ "path ab/..", BASE(DIR_AB, FILE_F("ab/..")), .nrecs = 2,
		  .expect = "invalid path" },
		{ "absolute path", BASE({ .kind = 1, .path = "/ab" }),
		  .nrecs = 1, .expect = "invalid path" },
		{ "empty segment", BASE(DIR_AB, FILE_F("ab//c")), .nrecs = 2,
		  .expect = "invalid path" },
		{ "trailing slash", BASE({ .kind = 1, .path = "ab/" }),
		  .nrecs = 1, .expect = "invalid path" },
		{ "empty path", BASE({ .kind = 1, .path = "" }), .nrecs = 1,
		  .expect = "path length 0" },
		{ "NUL in path", BASE({ .kind = 1, .path = "a\0b",
		  .path_len = 3 }), .nrecs = 1, .expect = "NUL" },
		{ "path over 4096", BASE({ .kind = 1, .path_len = 4097 }),
		  .nrecs = 1, .expect = "path length" },
		{ "name over 255", BASE({ .kind = 1, .path_len = 256 }),
		  .nrecs = 1, .expect = "invalid path" },
		{ "path length past end", BASE(DIR_AB), .nrecs = 1,
		  PATCH(HDR + 2, 2, 0xffff), .expect = "truncated" },
		{ "duplicate path", BASE(DIR_AB, DIR_AB), .nrecs = 2,
		  .expect = "duplicate" },
		{ "unsorted paths", BASE({ .kind = 1, .path = "b" },
		  { .kind = 1, .path = "a" }), .nrecs = 2,
		  .expect = "not sorted" },
		{ "file under a file", BASE(FILE_F("ab"), FILE_F("ab/c")),
		  .nrecs = 2, .expect = "parent is not a directory" },
		{ "missing parent", BASE(FILE_F("x/y")), .nrecs = 1,
		  .expect = "parent is not a directory" },
		{ "link to nothing", BASE(FILE_F("a"), { .kind = 4,
		  .path = "b", .link_id = 1 }), .nrecs = 2,
		  .expect = "hard link record" },
		{ "link id 0", BASE({ .kind = 2, .path = "a", .link_id = 1 },
		  { .kind = 4, .path = "b" }), .nrecs = 2,
		  .expect = "hard link record" },
		{ "link id skips", BASE({ .kind = 2, .path = "a",
		  .link_id = 2 }, { .kind = 4, .path = "b", .link_id = 2 }),
		  .nrecs = 2, .expect = "invalid link id" },
		{ "link group of one", BASE({ .kind = 2, .path = "a",
		  .link_id = 1 }), .nrecs = 1, .expect = "one member" },
		{ "directory with link id", BASE({ .kind = 1, .path = "a",
		  .link_id = 1 }, { .kind = 4, .path = "b", .link_id = 1 }),
		  .nrecs = 2, .expect = "invalid link id" },
		{ "link record with mode", BASE({ .kind = 2, .path = "a",
		  .link_id = 1 }, { .kind = 4, .path = "b", .link_id = 1 }),
		  .nrecs = 2, PATCH(HDR + REC + 1 + 8, 4, 0600),
		  .expect = "hard link record" },
		{ "file type bits in mode", BASE({ .kind = 1, .path = "a",
		  .mode = 0100600 }), .nrecs = 1, .expect = "invalid mode" },
		{ "nsec 1e9", BASE({ .kind = 1, .path = "a",
		  .nsec = 1000000000 }), .nrecs = 1, .expect = "invalid mode" },
		{ "uid -1", BASE({ .kind = 1, .path = "a",
		  .uid = 0xffffffff }), .nrecs = 1, .expect = "invalid mode" },
		{ "directory with size", BASE({ .kind = 1, .path = "a",
		  .size = 5 }), .nrecs = 1, .expect = "guid or size" },
		{ "bad directory guid", BASE({ .kind = 1, .path = "a",
		  .key = "00D7D12EA08A3153175E0000DFBEA952" }), .nrecs = 1,
		  .expect = "guid or size" },
		{ "directory key of 5", BASE({ .kind = 1, .path = "a",
		  .key = "abcde" }), .nrecs = 1, .expect = "key length" },
		{ "stub without key", BASE({ .kind = 3, .path = "a" }),
		  .nrecs = 1, .expect = "key length" },
		{ "stub key with ..", BASE({ .kind = 3, .path = "a",
		  .key = "b5/../../x" }), .nrecs = 1,
		  .expect = "invalid stub key" },
		{ "file with key", BASE({ .kind = 2, .path = "a", .key = GUID,
		  .size = 1 }), .nrecs = 1, .expect = "key length" },
		{ "file size past end", BASE(FILE_F("f")), .nrecs = 1,
		  PATCH(HDR + 40, 8, 1000000), .expect = "truncated" },
		{ "file size over INT64_MAX", BASE(FILE_F("f")), .nrecs = 1,
		  PATCH(HDR + 40, 8, UINT64_MAX), .expect = "invalid mode" },
		{ "file with old size", BASE(FILE_F("f")), .nrecs = 1,
		  PATCH(HDR + 48, 8, 1), .expect = "old size" },
		{ "append not growing", DIFF({ .kind = 5, .path = "f",
		  .size = 4, .old_size = 4 }), .nrecs = 1,
		  .expect = "old size" },
		{ "deleted and changed", DIFF(DIR_AB), .nrecs = 1,
		  .dels = { "ab" }, .ndels = 1, .expect = "both deleted" },
		{ "deletes unsorted", DIFF(DIR_AB), .nrecs = 1,
		  .dels = { "z", "y" }, .ndels = 2, .expect = "not sorted" },
		{ "deleted path ..", DIFF(DIR_AB), .nrecs = 1,
		  .dels = { "a/../b" }, .ndels = 1, .expect = "invalid path" },
		{ "deleted path past end", DIFF(DIR_AB), .nrecs = 1,
		  .dels = { "q" }, .ndels = 1,
		  PATCH(HDR + REC + 2, 2, 500), .expect = "truncated" },
	};

	return cr_make_param_array(struct hcase, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct hcase *c, bundle_hostile, table)
{
	struct bundle *bundle = NULL;
	const char *error = NULL;
	struct raw r;
	int ret;

	build(c, &r);
	ret = bundle_decode(r.d, r.len, 1 << 20, &bundle, &error);
	if (c->expect[0] == '\0') {
		cr_assert_eq(ret, 0, "%s: %s", c->name, error);
		cr_assert_not_null(bundle);
		cr_assert_eq(bundle->info.mails_secs, c->mark_secs);
		cr_assert_eq(bundle->info.mails_usecs, c->mark_usecs);
	} else {
		cr_assert_eq(ret, -1, "%s: decoded", c->name);
		cr_assert_null(bundle);
		cr_assert_not_null(strstr(error, c->expect),
				   "%s: error '%s' does not mention '%s'",
				   c->name, error, c->expect);
	}
	bundle_free(&bundle);
	free(r.d);
}

/* a small valid base bundle from the library: dir with guid, file, stub,
   hard link, empty file, symlink, device node */
static void small_bundle(unsigned char **data_r, size_t *size_r)
{
	struct bundle_tree *tree = bundle_tree_new();
	struct bundle_info info = { .secs = 1, .usecs = 2 };
	struct bundle_entry es[] = {
		{ .path = "d", .type = BUNDLE_ENTRY_DIR, .mode = 0700,
		  .guid = GUID },
		{ .path = "d/f", .type = BUNDLE_ENTRY_FILE, .mode = 0600,
		  .size = 3, .data = (unsigned char *)"abc", .link_id = 1 },
		{ .path = "d/g", .type = BUNDLE_ENTRY_FILE, .mode = 0600,
		  .size = 3, .data = (unsigned char *)"abc", .link_id = 1 },
		{ .path = "d/s", .type = BUNDLE_ENTRY_STUB, .key = KEY,
		  .size = 77 },
		{ .path = "e", .type = BUNDLE_ENTRY_FILE },
		{ .path = "l", .type = BUNDLE_ENTRY_SYMLINK, .mode = 0777,
		  .size = 5, .data = (unsigned char *)"d/abc" },
		{ .path = "n", .type = BUNDLE_ENTRY_CHARDEV, .mode = 0600,
		  .rdev = 0x103 },
	};
	const char *error;

	for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++)
		cr_assert_eq(bundle_tree_add(tree, &es[i], &error), 0);
	cr_assert_eq(bundle_encode_base(tree, &info, data_r, size_r, &error),
		     0, "%s", error);
	bundle_tree_free(&tree);
}

static void fix_checksum(unsigned char *d, size_t size)
{
	SHA256(d, size - 32, d + size - 32);
}

Test(bundle_hostile, every_truncation_is_refused)
{
	unsigned char *data, *copy;
	struct bundle *bundle;
	const char *error;
	size_t size;

	small_bundle(&data, &size);
	for (size_t len = 0; len < size; len++) {
		/* a copy of exactly len bytes, so ASan sees any overread */
		copy = malloc(len + 1);
		memcpy(copy, data, len);
		cr_assert_eq(bundle_decode(copy, len, size, &bundle, &error),
			     -1, "length %zu decoded", len);
		if (len >= 160) {
			fix_checksum(copy, len);
			cr_assert_eq(bundle_decode(copy, len, size, &bundle,
						   &error), -1,
				     "length %zu with checksum decoded", len);
		}
		free(copy);
	}
	free(data);
}

Test(bundle_hostile, every_flipped_byte_is_caught_or_harmless)
{
	unsigned char *data, *copy;
	struct bundle *bundle;
	const char *error;
	size_t size, refused = 0;

	small_bundle(&data, &size);
	copy = malloc(size);
	for (size_t i = 0; i < size - 32; i++) {
		for (unsigned int bit = 0; bit < 8; bit++) {
			memcpy(copy, data, size);
			copy[i] ^= (unsigned char)(1U << bit);
			cr_assert_eq(bundle_decode(copy, size, size, &bundle,
						   &error), -1);
			/* header fields are checked first, then the sum */
			if (i >= 128)
				cr_assert_not_null(strstr(error, "checksum"));
			fix_checksum(copy, size);
			if (bundle_decode(copy, size, size, &bundle,
					  &error) < 0) {
				cr_assert_gt(strlen(error), 0);
				refused++;
				continue;
			}
			/* accepted (e.g. content or mtime): still sane */
			cr_assert_eq(bundle_tree_check(bundle->tree, &error),
				     0, "byte %zu: %s", i, error);
			bundle_free(&bundle);
		}
	}
	/* most fields are checked: the header and record layout */
	cr_assert_gt(refused, (size - 32) * 8 / 2, "only %zu refused",
		     refused);
	free(copy);
	free(data);
}

Test(bundle_hostile, size_limit_is_enforced_before_parsing)
{
	unsigned char *data;
	struct bundle *bundle = NULL;
	const char *error;
	size_t size;

	small_bundle(&data, &size);
	cr_assert_eq(bundle_decode(data, size, size - 1, &bundle, &error), -1);
	cr_assert_not_null(strstr(error, "limit"), "%s", error);
	cr_assert_eq(bundle_decode(data, size, size, &bundle, &error), 0);
	bundle_free(&bundle);
	free(data);
}
