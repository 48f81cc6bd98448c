/* SPDX-License-Identifier: MIT */
/*
 * tokenizer: exact BPE token counting for o200k_base and cl100k_base, the
 * way tiktoken does it (split regex, then byte-pair merges by rank), plus
 * an incremental counter for streams, OpenAI's chat message rule and the
 * `llm-bridge tokens` command. See tokenizer.h for the contract.
 *
 * Data layout per encoding, read-only once loaded (which is what makes
 * sharing between threads safe):
 *   arena     every token's bytes, concatenated (decoded from base64)
 *   tok_off   rank -> offset in arena
 *   tok_len   rank -> length
 *   slots     open-addressing hash table (linear probing, load <= 0.5)
 *             of {hash, rank + 1}; 0 marks an empty slot
 *
 * Those four tables come from one of two places:
 *   - a .tokimg image (the normal case): the build runs tokimg, which
 *     parses the .tiktoken text with the code below and writes the tables
 *     as they lie in memory after a small header. tok_load() mmap()s it,
 *     checks the header and points the tables into the mapping: nothing
 *     is parsed or copied, pages are read in as lookups touch them, and
 *     every process on the machine shares them through the page cache.
 *   - the .tiktoken text itself, parsed into four heap allocations: for a
 *     source tree that was never built, or when the image is unusable.
 * The image is not trusted blindly: its header is checksummed and checked
 * against the file size and the encoding, and lookups stay inside the
 * tables whatever they contain, so a corrupt image gives wrong counts at
 * worst, never a crash. tok_image_verify() checks the table checksum too
 * (it reads every page, so start-up does not).
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pcre2.h>

#include "log.h"
#include "tokenizer.h"
#include "util.h"

#define NO_RANK UINT32_MAX
/* Pieces up to this many bytes use tiktoken's quadratic scan (fast for the
 * short pieces that make up almost all text); longer ones use a heap. */
#define SMALL_PIECE 128

/* Where tok_encode() collects token ids; NULL when only counting. */
struct sink {
	uint32_t *ids;
	size_t max;
	size_t n;
};

static inline void emit(struct sink *out, uint32_t rank)
{
	if (out->n < out->max)
		out->ids[out->n] = rank;
	out->n++;
}

/*
 * Split patterns, from tiktoken's openai_public.py, in PCRE2 syntax. One
 * deliberate change: \s is spelled out as Unicode White_Space, which is
 * what tiktoken's Rust regex engine means by \s. PCRE2's UCP \s leaves out
 * U+0085 (NEL). (js-tiktoken differs from tiktoken here too: JavaScript's
 * \s takes U+FEFF and not U+0085; and its expanded contractions do not
 * match U+017F "long s" the way (?i:'s) does. Texts with these characters
 * are where the reference corpus would disagree, so it avoids them.)
 */
#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}" \
	"\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define CONTRACTION "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"

static const char o200k_pattern[] =
	"[^\\r\\n\\p{L}\\p{N}]?" UPPER "*" LOWER "+" CONTRACTION
	"|[^\\r\\n\\p{L}\\p{N}]?" UPPER "+" LOWER "*" CONTRACTION
	"|\\p{N}{1,3}"
	"| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*"
	"|[" WS "]*[\\r\\n]+"
	"|[" WS "]+(?![^" WS "])"
	"|[" WS "]+";

static const char cl100k_pattern[] =
	"'(?i:[sdmt]|ll|ve|re)"
	"|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++"
	"|\\p{N}{1,3}+"
	"| ?[^" WS "\\p{L}\\p{N}]++[\\r\\n]*+"
	"|[" WS "]++$"
	"|[" WS "]*[\\r\\n]"
	"|[" WS "]+(?![^" WS "])"
	"|[" WS "]";

struct slot {
	uint32_t hash;
	uint32_t rank1; /* rank + 1; 0 = empty */
};

struct tok_encoding {
	const char *name;
	const char *pattern;
	size_t n_vocab;          /* file check: ranks are 0..n_vocab-1 */
	_Atomic bool loaded;     /* set last, after every field above */
	bool lazy_failed;        /* {lazy_lock}: do not retry every call */
	pcre2_code *re;
	const unsigned char *arena;
	const uint32_t *tok_off;
	const uint16_t *tok_len;
	const struct slot *slots;
	size_t arena_len;
	size_t mask;             /* slots - 1, power of two minus one */
	size_t max_len;          /* longest token, bounds lookups */
	size_t max_probe;        /* longest probe any token needs */
	void *map;               /* the image the tables point into, or NULL
				  * when they are heap allocations */
	size_t map_len;
	uint32_t byte_rank[256]; /* single bytes, the most frequent lookup */
};

static struct tok_encoding encodings[] = {
	{ .name = "o200k_base", .pattern = o200k_pattern, .n_vocab = 199998 },
	{ .name = "cl100k_base", .pattern = cl100k_pattern, .n_vocab = 100256 },
};

/* ---- rank table ---- */

/* The token hash, which the images store, so changing it means a new
 * IMG_VERSION. The full 64 bits also serve as the image checksums. */
static inline uint64_t hash64(const unsigned char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL * (n + 1);

	while (n >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		h = (h ^ v) * 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 31;
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = 0;

		memcpy(&v, p, n);
		h = (h ^ v) * 0x94d049bb133111ebULL;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

static inline uint32_t hash_bytes(const unsigned char *p, size_t n)
{
	return (uint32_t)hash64(p, n);
}

static inline uint32_t rank_of(const struct tok_encoding *e,
			       const unsigned char *p, size_t n)
{
	uint32_t h;
	size_t i, probes;

	if (n == 1)
		return e->byte_rank[p[0]];
	if (n > e->max_len)
		return NO_RANK;
	h = hash_bytes(p, n);
	/* Every token sits at most max_probe slots past its home, so no
	 * lookup needs to look further: that bounds the loop even if an
	 * image's table is corrupt and has no empty slot. Likewise a rank
	 * and its bytes are range-checked before use. */
	for (i = h & e->mask, probes = 0; probes <= e->max_probe;
	     i = (i + 1) & e->mask, probes++) {
		const struct slot *s = &e->slots[i];

		if (!s->rank1)
			return NO_RANK;
		if (s->hash == h) {
			uint32_t r = s->rank1 - 1;

			if (r < e->n_vocab && e->tok_len[r] == n &&
			    e->tok_off[r] <= e->arena_len - n &&
			    !memcmp(e->arena + e->tok_off[r], p, n))
				return r;
		}
	}
	return NO_RANK;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode standard padded base64 s[0..n) into out. Returns the length or -1. */
static long b64decode(const char *s, size_t n, unsigned char *out)
{
	size_t i, o = 0;

	if (n == 0 || n % 4)
		return -1;
	for (i = 0; i < n; i += 4) {
		int a = b64val(s[i]), b = b64val(s[i + 1]);
		int c = s[i + 2] == '=' ? 0 : b64val(s[i + 2]);
		int d = s[i + 3] == '=' ? 0 : b64val(s[i + 3]);

		if (a < 0 || b < 0 || c < 0 || d < 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		if (s[i + 2] != '=')
			out[o++] = (unsigned char)(b << 4 | c >> 2);
		if (s[i + 3] != '=')
			out[o++] = (unsigned char)(c << 6 | d);
		if ((s[i + 2] == '=' || s[i + 3] == '=') && i + 4 != n)
			return -1;
	}
	return (long)o;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		size_t got;

		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 1 << 22;
			data = xrealloc(data, cap + 1);
		}
		got = fread(data + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		free(data);
		fclose(f);
		return NULL;
	}
	fclose(f);
	data[n] = '\0';
	*len = n;
	return data;
}

static void free_tables(struct tok_encoding *e)
{
	if (e->map) {
		munmap(e->map, e->map_len);
	} else {
		free((void *)e->arena);
		free((void *)e->tok_off);
		free((void *)e->tok_len);
		free((void *)e->slots);
	}
	e->map = NULL;
	e->map_len = 0;
	e->arena = NULL;
	e->tok_off = NULL;
	e->tok_len = NULL;
	e->slots = NULL;
}

static void free_encoding(struct tok_encoding *e)
{
	pcre2_code_free(e->re);
	free_tables(e);
	e->re = NULL;
	e->loaded = false;
}

/* Fill byte_rank from the slots. Both loaders need it: an image stores
 * it in its header, but it is found the same way when the image is made. */
static int find_byte_ranks(struct tok_encoding *e, struct buf *errors,
			   const char *path)
{
	for (size_t b = 0; b < 256; b++) {
		unsigned char c = (unsigned char)b;

		/* rank_of(n == 1) reads byte_rank, so look up by hand. */
		e->byte_rank[b] = NO_RANK;
		for (size_t i = hash_bytes(&c, 1) & e->mask; e->slots[i].rank1;
		     i = (i + 1) & e->mask) {
			uint32_t r = e->slots[i].rank1 - 1;

			if (e->tok_len[r] == 1 && e->arena[e->tok_off[r]] == c) {
				e->byte_rank[b] = r;
				break;
			}
		}
		if (e->byte_rank[b] == NO_RANK) {
			if (errors)
				buf_printf(errors, "%s: byte %zu has no token\n",
					   path, b);
			return -1;
		}
	}
	return 0;
}

/* Parse "<base64> <rank>\n" lines. Ranks must be exactly 0..n_vocab-1 in
 * any order, each once: a truncated or foreign file must not load. The
 * tables are heap allocations owned by e (free_tables). */
static int parse_ranks(struct tok_encoding *e, const char *data, size_t len,
		       struct buf *errors, const char *path)
{
	const char *p = data, *end = data + len;
	size_t n = e->n_vocab, cap, arena_len = 0, lines = 0, mask;
	/* Built through these, published read-only through e. Decoded
	 * tokens are never longer than their base64 text. */
	unsigned char *arena = xmalloc(len ? len : 1);
	uint32_t *tok_off = xmalloc(n * sizeof(*tok_off));
	uint16_t *tok_len = xcalloc(n, sizeof(*tok_len));
	struct slot *slots;

	for (cap = 1; cap < 2 * n; cap <<= 1)
		;
	slots = xcalloc(cap, sizeof(*slots));
	mask = cap - 1;
	e->arena = arena;
	e->tok_off = tok_off;
	e->tok_len = tok_len;
	e->slots = slots;
	e->mask = mask;
	e->max_len = 0;
	e->max_probe = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *sp = memchr(p, ' ', (size_t)(le - p));
		char *rend;
		unsigned long rank;
		long tl;
		uint32_t h;
		size_t i, probe = 0;

		if (le == p) { /* tolerate blank lines, e.g. a final one */
			p = le + 1;
			continue;
		}
		lines++;
		if (!sp)
			goto bad;
		errno = 0;
		rank = strtoul(sp + 1, &rend, 10);
		if (errno || rend != le || sp + 1 == le || rank >= n ||
		    tok_len[rank])
			goto bad;
		tl = b64decode(p, (size_t)(sp - p), arena + arena_len);
		if (tl <= 0 || tl > UINT16_MAX)
			goto bad;
		tok_off[rank] = (uint32_t)arena_len;
		tok_len[rank] = (uint16_t)tl;
		if ((size_t)tl > e->max_len)
			e->max_len = (size_t)tl;
		h = hash_bytes(arena + arena_len, (size_t)tl);
		for (i = h & mask; slots[i].rank1; i = (i + 1) & mask)
			probe++;
		if (probe > e->max_probe)
			e->max_probe = probe;
		slots[i].hash = h;
		slots[i].rank1 = (uint32_t)rank + 1;
		arena_len += (size_t)tl;
		p = le + 1;
	}
	if (lines != n) {
		if (errors)
			buf_printf(errors, "%s: %zu ranks, expected %zu\n",
				   path, lines, n);
		return -1;
	}
	/* Give back the slack: the arena is about 45% of the file. */
	e->arena = xrealloc(arena, arena_len ? arena_len : 1);
	e->arena_len = arena_len;
	return find_byte_ranks(e, errors, path);
bad:
	if (errors)
		buf_printf(errors, "%s: line %zu is not \"<base64> <rank>\"\n",
			   path, lines);
	return -1;
}

/* Parse the .tiktoken text at path into e's tables. */
static int load_text(struct tok_encoding *e, const char *path,
		     struct buf *errors)
{
	char *data;
	size_t len;
	int rc;

	data = read_file(path, &len);
	if (!data) {
		if (errors)
			buf_printf(errors, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	rc = parse_ranks(e, data, len, errors, path);
	free(data);
	if (rc < 0)
		free_tables(e);
	return rc;
}

/* ---- images ---- */

/*
 * An image is this header, then the four tables at IMG_ALIGN-aligned
 * offsets, exactly as parse_ranks() lays them out in memory. Numbers are
 * in the byte order of the machine that made it (the hash reads 8 bytes
 * at a time, so the slots depend on it anyway): byte_order tells, and a
 * machine of the other order rejects the image. The tables use only
 * fixed-width types, so word size does not matter; their element sizes
 * are recorded and checked all the same.
 */
#define IMG_MAGIC "LBTOKIMG"
#define IMG_VERSION 1
#define IMG_BYTE_ORDER 0x01020304u
#define IMG_ALIGN 64

struct img_header {
	char magic[8];           /* IMG_MAGIC, no NUL */
	uint32_t version;        /* IMG_VERSION */
	uint32_t byte_order;     /* IMG_BYTE_ORDER as its maker stored it */
	uint32_t header_size;    /* sizeof(struct img_header) */
	uint8_t off_size, len_size, slot_size, pad;
	char name[16];           /* the encoding, NUL-padded */
	uint64_t file_size;      /* the whole image: catches truncation */
	uint64_t n_vocab, n_slots, arena_len, max_len, max_probe;
	uint64_t arena_at, tok_off_at, tok_len_at, slots_at;
	uint64_t src_size;       /* the .tiktoken it was made from */
	uint64_t src_hash;
	uint64_t tables_sum;     /* hash64 of everything after the header */
	uint32_t byte_rank[256];
	uint64_t header_sum;     /* hash64 of the header up to here */
};

/* No padding anywhere: the layout is the same for every compiler. */
_Static_assert(sizeof(struct img_header) == 1176, "image header layout");

static uint64_t header_sum(const struct img_header *h)
{
	return hash64((const unsigned char *)h,
		      offsetof(struct img_header, header_sum));
}

static size_t align_up(size_t n)
{
	return (n + IMG_ALIGN - 1) & ~(size_t)(IMG_ALIGN - 1);
}

/* Whether [at, at + len) lies inside an image of size bytes, aligned. */
static bool table_fits(uint64_t at, uint64_t len, uint64_t size)
{
	return at % IMG_ALIGN == 0 && at >= sizeof(struct img_header) &&
		at <= size && len <= size - at;
}

/* Check h (the first bytes of an image of size bytes) for encoding e.
 * Returns NULL or why the image is unusable. */
static const char *check_header(const struct tok_encoding *e,
				const struct img_header *h, uint64_t size)
{
	if (size < sizeof(*h) || memcmp(h->magic, IMG_MAGIC, 8) != 0)
		return "not a tokenizer image (bad magic)";
	if (h->version != IMG_VERSION)
		return "unsupported image version";
	if (h->byte_order != IMG_BYTE_ORDER)
		return "image made for the other byte order";
	if (h->header_size != sizeof(*h) ||
	    h->off_size != sizeof(*e->tok_off) ||
	    h->len_size != sizeof(*e->tok_len) ||
	    h->slot_size != sizeof(*e->slots))
		return "image layout differs from this build's";
	if (h->header_sum != header_sum(h))
		return "image header checksum mismatch (corrupt)";
	if (h->file_size != size)
		return "image size differs from its header (truncated?)";
	if (strncmp(h->name, e->name, sizeof(h->name)) != 0 ||
	    h->n_vocab != e->n_vocab)
		return "image is of another encoding";
	/* From here on the header is what tokimg wrote; these checks keep
	 * a deliberately crafted one from pointing lookups out of bounds. */
	if (h->n_slots < 2 * h->n_vocab || h->n_slots > UINT32_MAX ||
	    (h->n_slots & (h->n_slots - 1)) || h->max_probe >= h->n_slots ||
	    h->max_len == 0 || h->max_len > UINT16_MAX ||
	    h->max_len > h->arena_len || /* rank_of: arena_len - n */
	    h->arena_len > UINT32_MAX ||
	    !table_fits(h->arena_at, h->arena_len, size) ||
	    !table_fits(h->tok_off_at, h->n_vocab * sizeof(uint32_t), size) ||
	    !table_fits(h->tok_len_at, h->n_vocab * sizeof(uint16_t), size) ||
	    !table_fits(h->slots_at, h->n_slots * sizeof(struct slot), size))
		return "image tables out of bounds (corrupt)";
	for (size_t b = 0; b < 256; b++)
		if (h->byte_rank[b] >= h->n_vocab)
			return "image byte table out of range (corrupt)";
	return NULL;
}

/* Map the image at path and point e's tables into it. The .tiktoken at
 * text_path (may be NULL), when there is one, must be the size the image
 * was made from: otherwise the image is stale. Returns 0; or -1 with
 * errno set (ENOENT: no image) and *why saying what is wrong.
 * The file must not be rewritten in place while mapped (a shorter file
 * would fault): installs replace it (install(1), dpkg and rpm unlink or
 * rename), which leaves the mapped copy intact. */
static int map_image(struct tok_encoding *e, const char *path,
		     const char *text_path, const char **why)
{
	const struct img_header *h;
	struct stat st, tst;
	void *map;
	int fd;

	*why = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < sizeof(*h)) {
		close(fd);
		*why = "not a tokenizer image (too short)";
		errno = EINVAL;
		return -1;
	}
	/* A file just written (by the build, dpkg or rpm) sits in the page
	 * cache in large folios, and the kernel maps a whole folio, up to
	 * 2 MB, on the first touch: a few lookups would map 6 MB of the
	 * o200k image into this process. Dropping the file's clean, unmapped
	 * cached pages first makes the faults below read back only the
	 * pages lookups touch. Pages another process maps are kept. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	/* MAP_PRIVATE + PROT_READ: never written, so the pages stay the page
	 * cache's and are shared by every process mapping the file. */
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		*why = strerror(errno);
		return -1;
	}
	/* Lookups hit random slots: without this, every fault on a file not
	 * yet cached reads ahead 128 KB that no lookup asked for. */
	(void)madvise(map, (size_t)st.st_size, MADV_RANDOM);
	h = map;
	*why = check_header(e, h, (uint64_t)st.st_size);
	if (!*why && text_path && stat(text_path, &tst) == 0 &&
	    (uint64_t)tst.st_size != h->src_size)
		*why = "stale: made from another version of the .tiktoken file";
	if (*why) {
		munmap(map, (size_t)st.st_size);
		errno = EINVAL;
		return -1;
	}
	e->map = map;
	e->map_len = (size_t)st.st_size;
	e->arena = (const unsigned char *)map + h->arena_at;
	e->tok_off = (const uint32_t *)((const char *)map + h->tok_off_at);
	e->tok_len = (const uint16_t *)((const char *)map + h->tok_len_at);
	e->slots = (const struct slot *)((const char *)map + h->slots_at);
	e->arena_len = (size_t)h->arena_len;
	e->mask = (size_t)h->n_slots - 1;
	e->max_len = (size_t)h->max_len;
	e->max_probe = (size_t)h->max_probe;
	memcpy(e->byte_rank, h->byte_rank, sizeof(e->byte_rank));
	return 0;
}

static struct tok_encoding *find_encoding(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(encodings); i++)
		if (!strcmp(encodings[i].name, name))
			return &encodings[i];
	return NULL;
}

/* An empty encoding named like the built-in one called name, to build or
 * check an image in without disturbing the loaded encodings. 0, or -1
 * with a message in errors (may be NULL) for an unknown name. */
static int private_copy(const char *name, struct tok_encoding *e,
			struct buf *errors)
{
	const struct tok_encoding *tmpl = name ? find_encoding(name) : NULL;

	if (!tmpl) {
		if (errors)
			buf_printf(errors, "unknown encoding '%s'\n",
				   name ? name : "");
		return -1;
	}
	memset(e, 0, sizeof(*e));
	e->name = tmpl->name;
	e->pattern = tmpl->pattern;
	e->n_vocab = tmpl->n_vocab;
	return 0;
}

int tok_image_write(const char *name, const char *src, const char *out,
		    struct buf *errors)
{
	struct tok_encoding e;
	struct img_header *h;
	unsigned char *img = NULL;
	char *text = NULL;
	size_t text_len, size;
	FILE *f = NULL;
	int rc = -1;

	if (private_copy(name, &e, errors) < 0)
		return -1;
	text = read_file(src, &text_len);
	if (!text) {
		if (errors)
			buf_printf(errors, "%s: %s\n", src, strerror(errno));
		goto out;
	}
	if (parse_ranks(&e, text, text_len, errors, src) < 0)
		goto out;

	img = xcalloc(1, align_up(sizeof(*h)) + align_up(e.arena_len) +
		      align_up(e.n_vocab * sizeof(*e.tok_off)) +
		      align_up(e.n_vocab * sizeof(*e.tok_len)) +
		      (e.mask + 1) * sizeof(*e.slots));
	h = (struct img_header *)img;
	memcpy(h->magic, IMG_MAGIC, 8);
	h->version = IMG_VERSION;
	h->byte_order = IMG_BYTE_ORDER;
	h->header_size = sizeof(*h);
	h->off_size = sizeof(*e.tok_off);
	h->len_size = sizeof(*e.tok_len);
	h->slot_size = sizeof(*e.slots);
	snprintf(h->name, sizeof(h->name), "%s", e.name);
	h->n_vocab = e.n_vocab;
	h->n_slots = e.mask + 1;
	h->arena_len = e.arena_len;
	h->max_len = e.max_len;
	h->max_probe = e.max_probe;
	h->arena_at = align_up(sizeof(*h));
	h->tok_off_at = h->arena_at + align_up(e.arena_len);
	h->tok_len_at = h->tok_off_at + align_up(e.n_vocab * sizeof(*e.tok_off));
	h->slots_at = h->tok_len_at + align_up(e.n_vocab * sizeof(*e.tok_len));
	size = h->slots_at + h->n_slots * sizeof(*e.slots);
	h->file_size = size;
	memcpy(img + h->arena_at, e.arena, e.arena_len);
	memcpy(img + h->tok_off_at, e.tok_off, e.n_vocab * sizeof(*e.tok_off));
	memcpy(img + h->tok_len_at, e.tok_len, e.n_vocab * sizeof(*e.tok_len));
	memcpy(img + h->slots_at, e.slots, h->n_slots * sizeof(*e.slots));
	memcpy(h->byte_rank, e.byte_rank, sizeof(h->byte_rank));
	h->src_size = text_len;
	h->src_hash = hash64((const unsigned char *)text, text_len);
	h->tables_sum = hash64(img + sizeof(*h), size - sizeof(*h));
	h->header_sum = header_sum(h);

	f = fopen(out, "wb");
	if (!f || fwrite(img, 1, size, f) != size) {
		if (errors)
			buf_printf(errors, "%s: %s\n", out, strerror(errno));
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		if (errors)
			buf_printf(errors, "%s: %s\n", out, strerror(errno));
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	free(img);
	free(text);
	free_tables(&e);
	return rc;
}

int tok_image_verify(const char *name, const char *path, struct buf *errors)
{
	struct tok_encoding e;
	const struct img_header *h;
	const char *why;

	if (private_copy(name, &e, errors) < 0)
		return -1;
	/* No text to compare with: the staleness check is the loader's. */
	if (map_image(&e, path, NULL, &why) < 0) {
		if (errors)
			buf_printf(errors, "%s: %s\n", path,
				   why ? why : strerror(errno));
		return -1;
	}
	h = e.map;
	if (hash64((const unsigned char *)e.map + sizeof(*h),
		   e.map_len - sizeof(*h)) != h->tables_sum) {
		if (errors)
			buf_printf(errors, "%s: image tables checksum mismatch "
				   "(corrupt)\n", path);
		free_tables(&e);
		return -1;
	}
	free_tables(&e);
	return 0;
}

/* Tables from dir/NAME.tokimg, or from dir/NAME.tiktoken when there is
 * no usable image. An image that is there but unusable is logged: it
 * should have been fine, and the text costs 40 ms and 7 MB more. */
static int load_tables(struct tok_encoding *e, const char *dir,
		       struct buf *errors)
{
	char img[4096], text[4096];
	const char *why;

	snprintf(img, sizeof(img), "%s/%s.tokimg", dir, e->name);
	snprintf(text, sizeof(text), "%s/%s.tiktoken", dir, e->name);
	if (map_image(e, img, text, &why) == 0)
		return 0;
	if (errno == ENOENT) {
		if (access(text, R_OK) != 0) {
			if (errors)
				buf_printf(errors, "%s (or .tiktoken): %s\n",
					   img, strerror(errno));
			return -1;
		}
	} else {
		why = why ? why : strerror(errno);
		if (access(text, R_OK) != 0) {
			if (errors)
				buf_printf(errors, "%s: %s\n", img, why);
			return -1;
		}
		log_warn("tokenizer", "%s: %s; reading %s instead", img, why,
			 text);
	}
	return load_text(e, text, errors);
}

static int load_one(struct tok_encoding *e, const char *dir, struct buf *errors)
{
	int errcode;
	PCRE2_SIZE erroff;

	if (e->loaded)
		return 0;
	if (load_tables(e, dir, errors) < 0)
		return -1;
	/* MATCH_INVALID_UTF: arbitrary bytes must not make matching fail;
	 * invalid sequences are simply never part of a match. */
	e->re = pcre2_compile((PCRE2_SPTR)e->pattern, PCRE2_ZERO_TERMINATED,
			      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
			      PCRE2_DOLLAR_ENDONLY, &errcode, &erroff, NULL);
	if (!e->re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(errcode, msg, sizeof(msg));
		if (errors)
			buf_printf(errors, "%s pattern at %zu: %s\n", e->name,
				   (size_t)erroff, (char *)msg);
		free_encoding(e);
		return -1;
	}
	/* Without JIT (not built in, or W^X memory) the interpreter is used. */
	(void)pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE |
				PCRE2_JIT_PARTIAL_HARD);
	e->loaded = true;
	return 0;
}

/*
 * Match contexts with a JIT stack of their own, shared through a free
 * list. Without one, PCRE2's JIT takes 32 KiB of the calling thread's
 * stack for its own, and the page it touches there (40 KB down, far below
 * anything else a request needs) stays resident for as long as the
 * thread lives: a thread per connection made that 4 KB per open stream.
 * A context is held only while one text is being matched, so there are
 * about as many as there are threads counting at the same moment.
 */
#define JIT_STACK_START ((PCRE2_SIZE)32 * 1024)
#define JIT_STACK_MAX ((PCRE2_SIZE)512 * 1024)

struct jit_slot {
	pcre2_match_context *mc;
	pcre2_jit_stack *stack;
	struct jit_slot *next;
};

static pthread_mutex_t jit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct jit_slot *jit_free; /* {jit_lock} */

/* A slot for one text's matching, given back with jit_give(); NULL when
 * out of memory, and matching then uses the thread's stack as before. */
static struct jit_slot *jit_take(void)
{
	struct jit_slot *j;

	pthread_mutex_lock(&jit_lock);
	j = jit_free;
	if (j)
		jit_free = j->next;
	pthread_mutex_unlock(&jit_lock);
	if (j)
		return j;
	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->mc = pcre2_match_context_create(NULL);
	j->stack = pcre2_jit_stack_create(JIT_STACK_START, JIT_STACK_MAX,
					  NULL);
	if (!j->mc || !j->stack) {
		pcre2_match_context_free(j->mc);
		pcre2_jit_stack_free(j->stack);
		free(j);
		return NULL;
	}
	pcre2_jit_stack_assign(j->mc, NULL, j->stack);
	return j;
}

static void jit_give(struct jit_slot *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&jit_lock);
	j->next = jit_free;
	jit_free = j;
	pthread_mutex_unlock(&jit_lock);
}

static pcre2_match_context *jit_context(const struct jit_slot *j)
{
	return j ? j->mc : NULL;
}

static void jit_free_all(void)
{
	pthread_mutex_lock(&jit_lock);
	while (jit_free) {
		struct jit_slot *j = jit_free;

		jit_free = j->next;
		pcre2_match_context_free(j->mc);
		pcre2_jit_stack_free(j->stack);
		free(j);
	}
	pthread_mutex_unlock(&jit_lock);
}

/* Where the encodings that were not needed yet are loaded from. */
static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;
static char *lazy_dir; /* {lazy_lock} */

/*
 * o200k_base, which nearly every model uses, is loaded now: from an image
 * that is about 0.3 ms (map and header check 0.03 ms, PCRE2 compile 0.07,
 * JIT 0.2), so the first request pays nothing. The others are loaded when
 * a model first needs them (cl100k_base: gpt-4 and gpt-3.5), 0.1 ms from
 * an image, but 15 ms and 4 MB when only the text is there. Their files
 * are checked now, so a missing one is still reported at start.
 */
int tok_load(const char *dir, struct buf *errors)
{
	char path[4096];
	int rc = 0;

	if (load_one(&encodings[0], dir, errors) < 0)
		rc = -1;
	for (size_t i = 1; i < ARRAY_SIZE(encodings); i++) {
		char text[4096];

		snprintf(path, sizeof(path), "%s/%s.tokimg", dir,
			 encodings[i].name);
		snprintf(text, sizeof(text), "%s/%s.tiktoken", dir,
			 encodings[i].name);
		if (access(path, R_OK) != 0 && access(text, R_OK) != 0) {
			if (errors)
				buf_printf(errors, "%s (or .tiktoken): %s\n",
					   path, strerror(errno));
			rc = -1;
		}
	}
	pthread_mutex_lock(&lazy_lock);
	free(lazy_dir);
	lazy_dir = xstrdup(dir);
	pthread_mutex_unlock(&lazy_lock);
	return rc;
}

void tok_unload(void)
{
	pthread_mutex_lock(&lazy_lock);
	free(lazy_dir);
	lazy_dir = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(encodings); i++) {
		free_encoding(&encodings[i]);
		encodings[i].lazy_failed = false;
	}
	pthread_mutex_unlock(&lazy_lock);
	jit_free_all();
}

const struct tok_encoding *tok_encoding(const char *name)
{
	struct tok_encoding *e = NULL;

	if (!name)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(encodings); i++)
		if (!strcmp(encodings[i].name, name))
			e = &encodings[i];
	if (!e)
		return NULL;
	if (!e->loaded) {
		/* first use: one thread loads, the others wait for it */
		pthread_mutex_lock(&lazy_lock);
		if (!e->loaded && lazy_dir && !e->lazy_failed &&
		    load_one(e, lazy_dir, NULL) < 0) {
			e->lazy_failed = true;
			log_warn("tokenizer", "cannot load %s from %s", e->name,
				 lazy_dir);
		}
		pthread_mutex_unlock(&lazy_lock);
	}
	return e->loaded ? e : NULL;
}

const char *tok_encoding_name(const struct tok_encoding *e)
{
	return e ? e->name : NULL;
}

bool tok_encoding_mapped(const struct tok_encoding *e)
{
	return e && e->map;
}

const struct tok_encoding *tok_for_model(const char *model)
{
	/* Order matters: the o200k prefixes are more specific than "gpt-4". */
	static const char *const o200k[] = {
		"gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4",
		"chatgpt-4o",
	};
	static const char *const cl100k[] = {
		"gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada-002",
	};
	char name[256];
	const char *s = model ? model : "", *slash = strchr(s, '/');
	size_t n;

	if (slash)
		s = slash + 1;
	n = strcspn(s, "<");
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	memcpy(name, s, n);
	name[n] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(o200k); i++)
		if (has_prefix_ci(name, o200k[i]))
			return tok_encoding("o200k_base");
	for (size_t i = 0; i < ARRAY_SIZE(cl100k); i++)
		if (has_prefix_ci(name, cl100k[i]))
			return tok_encoding("cl100k_base");
	return tok_encoding("o200k_base");
}

/* ---- byte-pair merging ---- */

/* tiktoken's _byte_pair_merge: parts[i] is the start of a part and the
 * rank of merging it with the next part; repeatedly merge the leftmost
 * lowest-ranked pair. O(n * merges), which beats a heap for short pieces. */
static size_t merge_small(const struct tok_encoding *e,
			  const unsigned char *p, size_t n, struct sink *out)
{
	uint32_t start[SMALL_PIECE + 1], rank[SMALL_PIECE + 1];
	size_t parts = n + 1, i;

	for (i = 0; i + 1 < n; i++) {
		start[i] = (uint32_t)i;
		rank[i] = rank_of(e, p + i, 2);
	}
	start[n - 1] = (uint32_t)(n - 1);
	rank[n - 1] = NO_RANK;
	start[n] = (uint32_t)n;
	rank[n] = NO_RANK;

	for (;;) {
		uint32_t min = NO_RANK;
		size_t at = 0;

		for (i = 0; i + 1 < parts; i++)
			if (rank[i] < min) {
				min = rank[i];
				at = i;
			}
		if (min == NO_RANK)
			break;
		/* Merge parts at and at+1: the pairs starting at at-1 and at
		 * now span one more part. */
		if (at > 0)
			rank[at - 1] = at + 2 < parts ?
				rank_of(e, p + start[at - 1],
					start[at + 2] - start[at - 1]) :
				NO_RANK;
		rank[at] = at + 3 < parts ?
			rank_of(e, p + start[at], start[at + 3] - start[at]) :
			NO_RANK;
		memmove(&start[at + 1], &start[at + 2],
			(parts - at - 2) * sizeof(start[0]));
		memmove(&rank[at + 1], &rank[at + 2],
			(parts - at - 2) * sizeof(rank[0]));
		parts--;
	}
	if (out)
		for (i = 0; i + 1 < parts; i++)
			emit(out, rank_of(e, p + start[i], start[i + 1] - start[i]));
	return parts - 1;
}

/* Same merge order for long pieces (runs of letters or spaces can be
 * megabytes): a doubly linked list of parts and a min-heap keyed by
 * (rank, start), so ties go to the leftmost pair exactly as in the scan.
 * Heap entries are not removed when a pair changes; an entry is stale when
 * its part is gone or the part's current pair rank differs. */
struct merge_heap {
	uint64_t *v;
	size_t n;
};

static void heap_push(struct merge_heap *h, uint64_t key)
{
	size_t i = h->n++;

	while (i > 0 && h->v[(i - 1) / 2] > key) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = key;
}

static uint64_t heap_pop(struct merge_heap *h)
{
	uint64_t top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1] < h->v[c])
			c++;
		if (h->v[c] >= last)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

static size_t merge_large(const struct tok_encoding *e,
			  const unsigned char *p, size_t n, struct sink *out)
{
	/* Parts are named by their start byte; next[i] == n ends the list. */
	uint32_t *next = xmalloc(n * sizeof(*next));
	uint32_t *prev = xmalloc(n * sizeof(*prev));
	uint32_t *rank = xmalloc(n * sizeof(*rank));
	/* Every merge pushes at most two entries. */
	struct merge_heap h = { xmalloc((3 * n) * sizeof(uint64_t)), 0 };
	size_t parts = n, i;

	for (i = 0; i < n; i++) {
		next[i] = (uint32_t)(i + 1);
		prev[i] = (uint32_t)(i - 1); /* i == 0: wraps, never read */
		rank[i] = i + 1 < n ? rank_of(e, p + i, 2) : NO_RANK;
		if (rank[i] != NO_RANK)
			heap_push(&h, (uint64_t)rank[i] << 32 | i);
	}
	while (h.n) {
		uint64_t key = heap_pop(&h);
		uint32_t r = (uint32_t)(key >> 32), at = (uint32_t)key, nx;

		/* Stale: merged away (rank set to NO_RANK below) or repriced. */
		if (rank[at] != r)
			continue;
		nx = next[at];
		next[at] = next[nx];
		if (next[nx] < n)
			prev[next[nx]] = at;
		rank[nx] = NO_RANK;
		parts--;
		/* A part ends where the next one starts (or at n). */
		rank[at] = next[at] < n ?
			rank_of(e, p + at, next[next[at]] - at) : NO_RANK;
		if (rank[at] != NO_RANK)
			heap_push(&h, (uint64_t)rank[at] << 32 | at);
		if (at > 0) {
			uint32_t pv = prev[at];

			rank[pv] = rank_of(e, p + pv, next[at] - pv);
			if (rank[pv] != NO_RANK)
				heap_push(&h, (uint64_t)rank[pv] << 32 | pv);
		}
	}
	if (out)
		for (i = 0; i < n; i = next[i])
			emit(out, rank_of(e, p + i, next[i] - i));
	free(next);
	free(prev);
	free(rank);
	free(h.v);
	return parts;
}

/* Tokens of one pre-token (or of a run of invalid UTF-8 bytes). */
static size_t count_piece(const struct tok_encoding *e,
			  const unsigned char *p, size_t n, struct sink *out)
{
	uint32_t r;

	if (n == 0)
		return 0;
	r = rank_of(e, p, n);
	if (r != NO_RANK) {
		if (out)
			emit(out, r);
		return 1;
	}
	if (n <= SMALL_PIECE)
		return merge_small(e, p, n, out);
	return merge_large(e, p, n, out);
}

/* ---- pre-tokenization ---- */

/* Count text[off..len) with complete matching. Bytes no match covers are
 * invalid UTF-8 and are counted as pieces of their own. */
static size_t count_span(const struct tok_encoding *e, pcre2_match_data *md,
			 const unsigned char *text, size_t off, size_t len,
			 struct sink *out)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	struct jit_slot *jit = jit_take();
	size_t total = 0;

	while (off < len) {
		int rc = pcre2_match(e->re, text, len, off, 0, md,
				     jit_context(jit));
		size_t s, en;

		if (rc < 0) {
			/* No match: the rest is invalid bytes. Other errors
			 * (resource limits) cannot happen with these patterns;
			 * counting the rest as bytes keeps the result sane. */
			total += count_piece(e, text + off, len - off, out);
			break;
		}
		s = ov[0];
		en = ov[1];
		if (s > off)
			total += count_piece(e, text + off, s - off, out);
		if (en <= s) /* empty match: impossible here, but never loop */
			en = s + 1;
		total += count_piece(e, text + s, en - s, out);
		off = en;
	}
	jit_give(jit);
	return total;
}

static size_t encode(const struct tok_encoding *e, const char *text,
		     size_t len, struct sink *out)
{
	pcre2_match_data *md;
	size_t n;

	if (!e || !e->loaded || len == 0)
		return 0;
	md = pcre2_match_data_create(1, NULL);
	if (!md)
		abort();
	n = count_span(e, md, (const unsigned char *)text, 0, len, out);
	pcre2_match_data_free(md);
	return n;
}

size_t tok_count(const struct tok_encoding *e, const char *text, size_t len)
{
	return encode(e, text, len, NULL);
}

size_t tok_encode(const struct tok_encoding *e, const char *text, size_t len,
		  uint32_t *ids, size_t max)
{
	struct sink out = { ids, max, 0 };

	encode(e, text, len, &out);
	return out.n;
}

/* ---- streams ---- */

void tok_stream_init(struct tok_stream *st, const struct tok_encoding *e)
{
	memset(st, 0, sizeof(*st));
	st->enc = e;
}

/* Length of text[0..len) without a trailing UTF-8 sequence that is still
 * incomplete: its next byte may not have arrived yet. */
static size_t complete_utf8(const unsigned char *t, size_t len)
{
	size_t i = len, back = 0;

	while (i > 0 && back < 4 && (t[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i > 0) {
		unsigned char c = t[i - 1];
		size_t need = c >= 0xf0 && c < 0xf8 ? 4 :
			c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

		if (need > 1 && c < 0xf8 && back + 1 < need)
			return i - 1;
	}
	return len;
}

/* Count the matches that more text cannot change and drop them from the
 * tail. With PCRE2_PARTIAL_HARD a match attempt that reaches the end of
 * the tail (a letter run, a contraction "don'" awaiting its "t", spaces
 * whose lookahead needs the next character) reports a partial match;
 * everything before it is final. */
static void stream_scan(struct tok_stream *st)
{
	const struct tok_encoding *e = st->enc;
	const unsigned char *t = (const unsigned char *)st->tail;
	size_t end = complete_utf8(t, st->len), off = 0;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
	struct jit_slot *jit = off < end ? jit_take() : NULL;

	while (off < end) {
		int rc = pcre2_match(e->re, t, end, off, PCRE2_PARTIAL_HARD,
				     st->md, jit_context(jit));
		size_t s, en;

		if (rc == PCRE2_ERROR_PARTIAL)
			break;
		if (rc < 0) { /* only invalid bytes up to end */
			st->count += count_piece(e, t + off, end - off, NULL);
			off = end;
			break;
		}
		s = ov[0];
		en = ov[1];
		if (s > off)
			st->count += count_piece(e, t + off, s - off, NULL);
		if (en <= s)
			en = s + 1;
		st->count += count_piece(e, t + s, en - s, NULL);
		off = en;
	}
	jit_give(jit);
	if (off) {
		memmove(st->tail, st->tail + off, st->len - off);
		st->len -= off;
	}
	if (st->len > TOK_STREAM_MAX_TAIL) {
		/* One pre-token longer than the bound: count it as it is. */
		st->count += count_span(e, st->md, t, 0, st->len, NULL);
		st->len = 0;
	}
}

void tok_stream_feed(struct tok_stream *st, const char *piece, size_t len)
{
	if (!st->enc || !st->enc->loaded || len == 0)
		return;
	if (!st->md) {
		st->md = pcre2_match_data_create(1, NULL);
		if (!st->md)
			abort();
	}
	while (len) {
		/* Feed at most the bound at a time so the tail stays small
		 * even when one feed is huge. */
		size_t n = len < TOK_STREAM_MAX_TAIL ? len : TOK_STREAM_MAX_TAIL;

		if (st->cap - st->len < n) {
			/* the tail is a word or two: start small, grow by
			 * doubling (a stream holds it to its end) */
			size_t cap = st->cap ? 2 * st->cap : 256;

			while (cap < st->len + n)
				cap *= 2;
			st->cap = cap;
			st->tail = xrealloc(st->tail, st->cap);
		}
		memcpy(st->tail + st->len, piece, n);
		st->len += n;
		piece += n;
		len -= n;
		stream_scan(st);
	}
}

size_t tok_stream_finish(struct tok_stream *st)
{
	size_t total;

	if (st->len && st->md)
		st->count += count_span(st->enc, st->md,
					(const unsigned char *)st->tail, 0,
					st->len, NULL);
	total = st->count;
	st->count = 0;
	st->len = 0;
	return total;
}

void tok_stream_free(struct tok_stream *st)
{
	free(st->tail);
	pcre2_match_data_free(st->md);
	memset(st, 0, sizeof(*st));
}

/* ---- chat messages ---- */

static int64_t count_json_str(const struct tok_encoding *e, json_object *v)
{
	if (!json_object_is_type(v, json_type_string))
		return 0;
	return (int64_t)tok_count(e, json_object_get_string(v),
				  (size_t)json_object_get_string_len(v));
}

static int64_t count_content_parts(const struct tok_encoding *e,
				   json_object *parts)
{
	int64_t n = 0;
	size_t len = json_object_array_length(parts);

	for (size_t i = 0; i < len; i++) {
		json_object *part = json_object_array_get_idx(parts, i), *text;

		/* Text parts ("text", "input_text", "output_text"...) carry
		 * a "text" string; images and audio carry none and add 0. */
		if (json_object_is_type(part, json_type_string))
			n += count_json_str(e, part);
		else if (json_object_object_get_ex(part, "text", &text))
			n += count_json_str(e, text);
	}
	return n;
}

static int64_t count_tool_calls(const struct tok_encoding *e, json_object *calls)
{
	int64_t n = 0;
	size_t len = json_object_array_length(calls);

	for (size_t i = 0; i < len; i++) {
		json_object *fn, *v;

		if (!json_object_object_get_ex(json_object_array_get_idx(calls, i),
					       "function", &fn))
			continue;
		if (json_object_object_get_ex(fn, "name", &v))
			n += count_json_str(e, v);
		if (json_object_object_get_ex(fn, "arguments", &v))
			n += count_json_str(e, v);
	}
	return n;
}

int64_t tok_count_messages(const struct tok_encoding *e, json_object *messages)
{
	int64_t n = 3; /* every reply is primed with <|start|>assistant<|message|> */
	size_t len;

	if (!e || !json_object_is_type(messages, json_type_array))
		return -1;
	len = json_object_array_length(messages);
	for (size_t i = 0; i < len; i++) {
		json_object *m = json_object_array_get_idx(messages, i);

		if (!json_object_is_type(m, json_type_object))
			return -1;
		n += 3; /* <|start|>{role/name}\n{content}<|end|>\n */
		json_object_object_foreach(m, key, v) {
			if (json_object_is_type(v, json_type_string)) {
				n += count_json_str(e, v);
				if (!strcmp(key, "name"))
					n += 1;
			} else if (!strcmp(key, "content") &&
				   json_object_is_type(v, json_type_array)) {
				n += count_content_parts(e, v);
			} else if (!strcmp(key, "tool_calls") &&
				   json_object_is_type(v, json_type_array)) {
				n += count_tool_calls(e, v);
			}
		}
	}
	return n;
}

/* ---- CLI ---- */

const char *tok_data_dir(char *buf, size_t size)
{
	const char *env = getenv("LB_TOKENIZER_DIR");
	char exe[4096];
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	if (access(PKGLIBDIR "/tokenizer/o200k_base.tokimg", R_OK) == 0 ||
	    access(PKGLIBDIR "/tokenizer/o200k_base.tiktoken", R_OK) == 0)
		return PKGLIBDIR "/tokenizer";
	/* not installed: a build tree keeps the tables next to the binary */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, size, "%s/tokdata", exe);
			if (access(buf, R_OK) == 0)
				return buf;
		}
	}
	return PKGLIBDIR "/tokenizer";
}

/* --null: stdin holds NUL-separated texts; one count per line out. */
static void count_nul_separated(const struct tok_encoding *e, const char *p,
				size_t len)
{
	while (len > 0) {
		const char *nul = memchr(p, '\0', len);
		size_t n = nul ? (size_t)(nul - p) : len;

		printf("%zu\n", tok_count(e, p, n));
		if (!nul)
			break;
		p += n + 1;
		len -= n + 1;
	}
}

int tok_cli(int argc, char **argv)
{
	char dirbuf[4096];
	const char *encname = NULL, *model = NULL, *dir;
	const struct tok_encoding *e;
	struct tok_stream st;
	struct buf errors, all;
	bool nul_separated = false;
	char *chunk;
	ssize_t got;
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--encoding") && i + 1 < argc) {
			encname = argv[++i];
		} else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
			model = argv[++i];
		} else if (!strcmp(argv[i], "--null") || !strcmp(argv[i], "-0")) {
			nul_separated = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: llm-bridge tokens [--encoding o200k_base|"
			       "cl100k_base | --model [provider/]model] [--null] "
			       "< FILE\n  --null  stdin holds NUL-separated "
			       "texts: print one count per text\n");
			return 0;
		} else {
			fprintf(stderr, "llm-bridge tokens: unknown argument "
				"'%s' (try --help)\n", argv[i]);
			return 2;
		}
	}
	dir = tok_data_dir(dirbuf, sizeof(dirbuf));
	buf_init(&errors, 0);
	if (tok_load(dir, &errors) < 0) {
		fprintf(stderr, "llm-bridge tokens: %s",
			errors.data ? errors.data : "load failed\n");
		buf_free(&errors);
		tok_unload();
		return 1;
	}
	buf_free(&errors);
	e = model ? tok_for_model(model) :
		tok_encoding(encname ? encname : "o200k_base");
	if (!e) {
		fprintf(stderr, "llm-bridge tokens: unknown encoding '%s'\n",
			encname);
		tok_unload();
		return 2;
	}
	tok_stream_init(&st, e);
	buf_init(&all, 0);
	chunk = xmalloc(65536);
	while ((got = read(STDIN_FILENO, chunk, 65536)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "llm-bridge tokens: stdin: %s\n",
				strerror(errno));
			rc = 1;
			goto out;
		}
		/* a single text is counted as it streams in, never held */
		if (nul_separated)
			buf_append(&all, chunk, (size_t)got);
		else
			tok_stream_feed(&st, chunk, (size_t)got);
	}
	if (nul_separated)
		count_nul_separated(e, all.data ? all.data : "", all.len);
	else
		printf("%zu\n", tok_stream_finish(&st));
out:
	free(chunk);
	buf_free(&all);
	tok_stream_free(&st);
	tok_unload();
	return rc;
}
