/* custodes.ledger._native: the ledger's hot path in C (optional accelerator).
 *
 * What it does, each with a pure-Python twin in custodes.ledger.entry / custodes.ledger.tiles
 * that yields the same bytes (the tests pin the two against each other and against the
 * rfc8785 package):
 *
 *   canonical(value)          RFC 8785 canonical JSON of a plain JSON value, or None
 *   templates(entries)        every entry canonicalised with "index" and "recorded_at" left
 *                             open: one blob and three cut offsets per entry
 *   leaves(blob, cuts, start, time_json, slow)
 *                             the leaves of a batch (the open fields filled in), their end
 *                             offsets and their RFC 9162 leaf hashes, as three buffers
 *   mth(hashes, start, count) the RFC 9162 Merkle tree hash of ``count`` 32-byte hashes
 *
 * Anything unusual is handed back to the Python path instead of being guessed at here: None
 * from canonical(), a cut of -1 from templates(). That covers non-str keys, subclasses of
 * dict/list/str/int/float, tuples, integers beyond +-(2**53-1), NaN and infinities, lone
 * surrogates and nesting deeper than the Python path allows; the Python path then gives the
 * same bytes or raises the same InvalidEntry it always did. So C never has to reproduce an
 * error message, only the output for values it fully understands.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* OpenSSL 3 deprecates the low-level SHA256_Init/Update/Final, but its one-shot SHA256() goes
 * through EVP_Q_digest and fetches the algorithm on every call: for the 65-byte inputs of
 * interior nodes that costs more than the hash itself. The low-level calls run the same
 * (SHA-NI) code with none of that overhead. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

static inline void sha256(const unsigned char *data, size_t len, unsigned char *out) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
}

/* SHA-256(prefix || data) without copying data behind the prefix byte. */
static inline void sha256_prefixed(unsigned char prefix, const unsigned char *data, size_t len,
                                   unsigned char *out) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &prefix, 1);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
}

#define HASH 32
/* The Python path refuses entries nested deeper than 100 levels; handing back anything at
 * that depth or more leaves the decision (and its message) to it, and bounds the recursion. */
#define MAX_DEPTH 100
#define MAX_SAFE_INTEGER 9007199254740991LL

/* Result of a writer step: written, a Python exception is set, or "not plain: use Python". */
enum { OK = 0, ERR = -1, HANDBACK = 1 };

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (extra < 0 || b->len > PY_SSIZE_T_MAX - extra) {
        PyErr_NoMemory();
        return ERR;
    }
    Py_ssize_t need = b->len + extra;
    if (need <= b->cap)
        return OK;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *grown = PyMem_Realloc(b->data, (size_t)cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return ERR;
    }
    b->data = grown;
    b->cap = cap;
    return OK;
}

static int buf_put(Buf *b, const char *src, Py_ssize_t n) {
    if (buf_reserve(b, n) != OK)
        return ERR;
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return OK;
}

static int buf_byte(Buf *b, char c) {
    if (b->len >= b->cap && buf_reserve(b, 1) != OK)
        return ERR;
    b->data[b->len++] = c;
    return OK;
}

static void buf_free(Buf *b) {
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* -- strings ---------------------------------------------------------------------------- */

/* Bytes a JSON string must escape: the controls, '"' and '\\' (a table: one load per byte). */
static const unsigned char NEEDS_ESCAPE[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/* RFC 8785 3.2.2.2: '"' and '\\' escaped, controls as \b \t \n \f \r or \u00xx (lowercase),
 * everything else as its UTF-8. The UTF-8 comes from CPython, which refuses lone surrogates:
 * those go back to Python. */
static int write_str(Buf *b, PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return HANDBACK;
        }
        return ERR;
    }
    /* worst case every byte becomes \u00xx: reserve once, then write without checks */
    if (n > (PY_SSIZE_T_MAX - 2) / 6 || buf_reserve(b, 6 * n + 2) != OK) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return ERR;
    }
    static const char hex[] = "0123456789abcdef";
    char *out = b->data + b->len;
    *out++ = '"';
    Py_ssize_t run = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (!NEEDS_ESCAPE[c])
            continue;
        memcpy(out, u + run, (size_t)(i - run));
        out += i - run;
        run = i + 1;
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\t': *out++ = 't'; break;
        case '\n': *out++ = 'n'; break;
        case '\f': *out++ = 'f'; break;
        case '\r': *out++ = 'r'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    memcpy(out, u + run, (size_t)(n - run));
    out += n - run;
    *out++ = '"';
    b->len = out - b->data;
    return OK;
}

/* The first UTF-16 code unit of a code point: RFC 8785 sorts keys by UTF-16 units, which
 * differs from code point order only between astral characters (high surrogates D800-DBFF)
 * and U+E000-U+FFFF. */
static inline Py_UCS4 first_unit(Py_UCS4 c) {
    return c >= 0x10000 ? 0xD800 + ((c - 0x10000) >> 10) : c;
}

static int utf16_cmp(PyObject *a, PyObject *b) {
    Py_ssize_t na = PyUnicode_GET_LENGTH(a), nb = PyUnicode_GET_LENGTH(b);
    int ka = PyUnicode_KIND(a), kb = PyUnicode_KIND(b);
    const void *da = PyUnicode_DATA(a), *db = PyUnicode_DATA(b);
    Py_ssize_t n = na < nb ? na : nb;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 x = PyUnicode_READ(ka, da, i), y = PyUnicode_READ(kb, db, i);
        if (x == y)
            continue;
        Py_UCS4 ux = first_unit(x), uy = first_unit(y);
        if (ux != uy)
            return ux < uy ? -1 : 1;
        /* same high surrogate: both astral, and the low surrogates order as the code points */
        return x < y ? -1 : 1;
    }
    return na < nb ? -1 : (na > nb ? 1 : 0);
}

/* -- numbers ---------------------------------------------------------------------------- */

/* Decimal digits of x (|x| < 2**63); snprintf is several times slower and ints are common. */
static int format_ll(char *out, long long x) {
    char tmp[24];
    int n = 0, o = 0;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    return o;
}

static int put_ll(Buf *b, long long x) {
    if (buf_reserve(b, 21) != OK)
        return ERR;
    b->len += format_ll(b->data + b->len, x);
    return OK;
}

static int write_int(Buf *b, PyObject *v) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
        return ERR;
    if (overflow || x > MAX_SAFE_INTEGER || x < -MAX_SAFE_INTEGER)
        return HANDBACK; /* the Python path refuses it with its own message */
    return put_ll(b, x);
}

/* ECMAScript Number.prototype.toString (RFC 8785 3.2.2.3) from Python's repr, which gives the
 * same shortest round-trip digits; only the layout differs. */
static int write_float(Buf *b, double v) {
    if (!isfinite(v))
        return HANDBACK;
    if (v == 0.0)
        return buf_byte(b, '0'); /* -0 too */
    char *r = PyOS_double_to_string(v, 'r', 0, 0, NULL);
    if (r == NULL)
        return ERR;
    char digits[32];
    int k = 0, point = -1, exp10 = 0, neg = 0;
    const char *p = r;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            point = k;
        } else if (*p >= '0' && *p <= '9') {
            if (k >= (int)sizeof digits) {
                PyMem_Free(r);
                return HANDBACK; /* never for a repr; refuse rather than overflow */
            }
            digits[k++] = *p;
        } else {
            PyMem_Free(r);
            return HANDBACK;
        }
    }
    if (*p)
        exp10 = atoi(p + 1);
    PyMem_Free(r);
    if (point < 0)
        point = k;
    /* value = 0.DIGITS * 10**n with no leading or trailing zero digits */
    int start = 0;
    while (start < k && digits[start] == '0') {
        start++;
        point--;
    }
    while (k > start && digits[k - 1] == '0')
        k--;
    if (k == start)
        return buf_byte(b, '0');
    const char *s = digits + start;
    int nd = k - start;
    int n = point + exp10; /* ``point`` already moved left with the stripped leading zeros */
    char out[64];
    int o = 0;
    if (neg)
        out[o++] = '-';
    if (nd <= n && n <= 21) {
        memcpy(out + o, s, (size_t)nd);
        o += nd;
        for (int i = 0; i < n - nd; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, s, (size_t)n);
        o += n;
        out[o++] = '.';
        memcpy(out + o, s + n, (size_t)(nd - n));
        o += nd - n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, s, (size_t)nd);
        o += nd;
    } else {
        out[o++] = s[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, s + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%d", n - 1 < 0 ? '-' : '+',
                      n - 1 < 0 ? 1 - n : n - 1);
    }
    return buf_put(b, out, o);
}

/* -- values ----------------------------------------------------------------------------- */

static int write_value(Buf *b, PyObject *v, int depth);
static int write_dict(Buf *b, PyObject *d, int depth, Py_ssize_t *cuts);

typedef struct {
    PyObject *key;
    PyObject *value; /* NULL: an open slot ("index" or "recorded_at") */
} Item;

static int item_cmp(const void *x, const void *y) {
    return utf16_cmp(((const Item *)x)->key, ((const Item *)y)->key);
}

static PyObject *INDEX_KEY, *TIME_KEY;

/* Entries of one batch usually share their keys: the same str objects in the same order
 * (literals, or keys of one JSON decoder's memo). The last entry's key order is kept, and
 * an entry whose keys are the very same objects in the same order reuses it instead of
 * sorting again. The cache lives for one templates() call, during which every entry (and so
 * every key it saw) stays alive and no Python code runs: an equal pointer is the same key. */
#define ORDER_MAX 64
typedef struct {
    Py_ssize_t n;
    PyObject *keys[ORDER_MAX];   /* the dict's keys in iteration order, borrowed, not owned */
    Py_ssize_t order[ORDER_MAX + 2]; /* sorted position -> iteration position (n, n+1: slots) */
    /* The bytes written before each value, in sorted order ('{"a":', ',"b":', …), kept so a hit
     * copies the keys instead of escaping them again; prefix i is text[start[i]:start[i+1]]. */
    Buf text;
    Py_ssize_t start[ORDER_MAX + 3];
} OrderCache;

/* An object; with ``cuts`` the two reserved keys are added as open slots and the buffer
 * offsets right after their "key": are stored in cuts[0] and cuts[1]. */
static int write_dict_items(Buf *b, Item *items, Py_ssize_t total, int depth, Py_ssize_t *cuts) {
    int rc;
    if ((rc = buf_byte(b, '{')) != OK)
        return rc;
    for (Py_ssize_t i = 0; i < total; i++) {
        if (i && (rc = buf_byte(b, ',')) != OK)
            return rc;
        if ((rc = write_str(b, items[i].key)) != OK || (rc = buf_byte(b, ':')) != OK)
            return rc;
        if (items[i].value == NULL) {
            *cuts++ = b->len;
            continue;
        }
        if ((rc = write_value(b, items[i].value, depth + 1)) != OK)
            return rc;
    }
    return buf_byte(b, '}');
}

/* An entry: keys sorted with the open slots, through the order cache when its keys match. */
static int write_entry(Buf *b, PyObject *d, Py_ssize_t *cuts, OrderCache *cache) {
    Py_ssize_t n = PyDict_GET_SIZE(d);
    if (n > ORDER_MAX)
        return write_dict(b, d, 0, cuts);
    Item raw[ORDER_MAX + 2];
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    int same = cache->n == n;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (i >= n)
            return HANDBACK;
        raw[i].key = key;
        raw[i].value = value;
        if (same && cache->keys[i] != key)
            same = 0;
        i++;
    }
    if (i != n)
        return HANDBACK;
    if (!same) {
        for (i = 0; i < n; i++) {
            if (!PyUnicode_CheckExact(raw[i].key))
                return HANDBACK;
            if (PyUnicode_Compare(raw[i].key, INDEX_KEY) == 0 ||
                PyUnicode_Compare(raw[i].key, TIME_KEY) == 0)
                return HANDBACK; /* a reserved field: the Python path refuses it */
        }
        Item keyed[ORDER_MAX + 2];
        for (i = 0; i < n; i++) {
            keyed[i].key = raw[i].key;
            keyed[i].value = (PyObject *)(intptr_t)(i + 1); /* remember the position */
        }
        keyed[n].key = INDEX_KEY;
        keyed[n].value = (PyObject *)(intptr_t)(n + 1);
        keyed[n + 1].key = TIME_KEY;
        keyed[n + 1].value = (PyObject *)(intptr_t)(n + 2);
        qsort(keyed, (size_t)(n + 2), sizeof(Item), item_cmp);
        cache->n = -1; /* invalid until the key text below is complete */
        cache->text.len = 0;
        for (i = 0; i < n + 2; i++) {
            cache->order[i] = (Py_ssize_t)(intptr_t)keyed[i].value - 1;
            cache->start[i] = cache->text.len;
            int rc = buf_byte(&cache->text, i ? ',' : '{');
            if (rc == OK)
                rc = write_str(&cache->text, keyed[i].key);
            if (rc == OK)
                rc = buf_byte(&cache->text, ':');
            if (rc != OK)
                return rc; /* lone surrogates in a key: handed back; memory: an error */
        }
        cache->start[n + 2] = cache->text.len;
        for (i = 0; i < n; i++)
            cache->keys[i] = raw[i].key;
        cache->n = n;
    }
    /* Values in sorted order, each behind its key text from the cache. */
    for (i = 0; i < n + 2; i++) {
        Py_ssize_t from = cache->start[i], len = cache->start[i + 1] - from;
        if (buf_put(b, cache->text.data + from, len) != OK)
            return ERR;
        Py_ssize_t at = cache->order[i];
        if (at >= n) {
            *cuts++ = b->len; /* an open slot: "index" before "recorded_at", always */
            continue;
        }
        int rc = write_value(b, raw[at].value, 1);
        if (rc != OK)
            return rc;
    }
    return buf_byte(b, '}');
}

static int write_dict(Buf *b, PyObject *d, int depth, Py_ssize_t *cuts) {
    if (depth >= MAX_DEPTH)
        return HANDBACK;
    Py_ssize_t n = PyDict_GET_SIZE(d), total = n + (cuts ? 2 : 0);
    Item stack_items[16];
    Item *items = total <= 16 ? stack_items : PyMem_New(Item, (size_t)total);
    if (items == NULL) {
        PyErr_NoMemory();
        return ERR;
    }
    int rc = OK;
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            rc = HANDBACK;
            goto done;
        }
        if (cuts && (PyUnicode_Compare(key, INDEX_KEY) == 0 ||
                     PyUnicode_Compare(key, TIME_KEY) == 0)) {
            rc = HANDBACK; /* a reserved field: the Python path refuses it */
            goto done;
        }
        if (i >= n) { /* the dict grew under us (a __hash__/__eq__ side effect) */
            rc = HANDBACK;
            goto done;
        }
        items[i].key = key;
        items[i].value = value;
        i++;
    }
    if (i != n) {
        rc = HANDBACK;
        goto done;
    }
    if (cuts) {
        items[i].key = INDEX_KEY;
        items[i++].value = NULL;
        items[i].key = TIME_KEY;
        items[i++].value = NULL;
    }
    /* Keys are borrowed from the dict; nothing below runs Python code that could change it
     * (exact str keys, exact container types only), so they stay alive while we sort and write. */
    qsort(items, (size_t)total, sizeof(Item), item_cmp);
    rc = write_dict_items(b, items, total, depth, cuts);
done:
    if (items != stack_items)
        PyMem_Free(items);
    return rc;
}

static int write_value(Buf *b, PyObject *v, int depth) {
    if (v == Py_None)
        return buf_put(b, "null", 4);
    if (v == Py_True)
        return buf_put(b, "true", 4);
    if (v == Py_False)
        return buf_put(b, "false", 5);
    if (PyUnicode_CheckExact(v))
        return write_str(b, v);
    if (PyLong_CheckExact(v))
        return write_int(b, v);
    if (PyFloat_CheckExact(v))
        return write_float(b, PyFloat_AS_DOUBLE(v));
    if (PyDict_CheckExact(v))
        return write_dict(b, v, depth, NULL);
    if (PyList_CheckExact(v)) {
        if (depth >= MAX_DEPTH)
            return HANDBACK;
        int rc = buf_byte(b, '[');
        /* PyList_GET_SIZE each round: the list cannot change (no Python code runs), but
         * re-reading keeps the index in bounds even so */
        for (Py_ssize_t i = 0; rc == OK && i < PyList_GET_SIZE(v); i++) {
            if (i)
                rc = buf_byte(b, ',');
            if (rc == OK)
                rc = write_value(b, PyList_GET_ITEM(v, i), depth + 1);
        }
        return rc == OK ? buf_byte(b, ']') : rc;
    }
    return HANDBACK;
}

/* -- module functions ------------------------------------------------------------------- */

static PyObject *canonical(PyObject *self, PyObject *value) {
    Buf b = {0};
    int rc = write_value(&b, value, 0);
    PyObject *out = NULL;
    if (rc == OK)
        out = PyBytes_FromStringAndSize(b.data, b.len);
    else if (rc == HANDBACK)
        out = Py_NewRef(Py_None);
    buf_free(&b);
    return out;
}

/* templates(entries) -> (blob, cuts): cuts holds three int64 per entry, the blob offsets where
 * its head (ending in '"index":'), its middle (ending in '"recorded_at":') and its tail end.
 * An entry handed back to Python gets cuts (-1, -1, -1) and no bytes. */
static PyObject *templates(PyObject *self, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "templates() needs a sequence of entries");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *cuts_obj = PyBytes_FromStringAndSize(NULL, n * 3 * (Py_ssize_t)sizeof(int64_t));
    if (cuts_obj == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    int64_t *cuts = (int64_t *)PyBytes_AS_STRING(cuts_obj);
    Buf b = {0};
    OrderCache cache;
    cache.n = -1;
    cache.text = (Buf){0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t start = b.len, slots[2] = {0, 0};
        int rc = PyDict_CheckExact(entry) ? write_entry(&b, entry, slots, &cache) : HANDBACK;
        if (rc == ERR) {
            buf_free(&b);
            buf_free(&cache.text);
            Py_DECREF(cuts_obj);
            Py_DECREF(seq);
            return NULL;
        }
        if (rc == HANDBACK) {
            b.len = start; /* drop what was written before the entry was found unusual */
            cuts[3 * i] = cuts[3 * i + 1] = cuts[3 * i + 2] = -1;
            continue;
        }
        cuts[3 * i] = slots[0];
        cuts[3 * i + 1] = slots[1];
        cuts[3 * i + 2] = b.len;
    }
    Py_DECREF(seq);
    buf_free(&cache.text);
    PyObject *blob = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
    buf_free(&b);
    if (blob == NULL) {
        Py_DECREF(cuts_obj);
        return NULL;
    }
    return Py_BuildValue("(NN)", blob, cuts_obj);
}

/* leaves(blob, cuts, start, time_json, slow) -> (leaves, ends, hashes)
 *
 * Entry i becomes head + str(start + i) + middle + time_json + tail; an entry whose cuts are
 * -1 takes the next ready-made leaf from ``slow`` instead. ``ends`` holds one int64 per leaf
 * (its end offset in ``leaves``), ``hashes`` 32 bytes per leaf: SHA-256(0x00 || leaf). */
static PyObject *leaves(PyObject *self, PyObject *args) {
    Py_buffer blob, cutbuf, time_json;
    long long start;
    PyObject *slow;
    if (!PyArg_ParseTuple(args, "y*y*Ly*O!:leaves", &blob, &cutbuf, &start, &time_json,
                          &PyList_Type, &slow))
        return NULL;
    PyObject *result = NULL, *out = NULL, *ends_obj = NULL, *hashes_obj = NULL;
    if (cutbuf.len % (3 * (Py_ssize_t)sizeof(int64_t)) != 0) {
        PyErr_SetString(PyExc_ValueError, "cuts must hold three int64 per entry");
        goto fail;
    }
    if (start < 0) {
        PyErr_SetString(PyExc_ValueError, "start must not be negative");
        goto fail;
    }
    Py_ssize_t n = cutbuf.len / (3 * (Py_ssize_t)sizeof(int64_t));
    const int64_t *cuts = (const int64_t *)cutbuf.buf;
    /* First pass: check every offset and size the output, so the copy below cannot overrun. */
    Py_ssize_t total = 0, prev = 0, n_slow = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *c = cuts + 3 * i;
        Py_ssize_t size;
        if (c[0] == -1 && c[1] == -1 && c[2] == -1) {
            if (n_slow >= PyList_GET_SIZE(slow) || !PyBytes_Check(PyList_GET_ITEM(slow, n_slow))) {
                PyErr_SetString(PyExc_ValueError, "slow must hold one bytes leaf per open cut");
                goto fail;
            }
            size = PyBytes_GET_SIZE(PyList_GET_ITEM(slow, n_slow));
            n_slow++;
        } else {
            if (!(prev <= c[0] && c[0] <= c[1] && c[1] <= c[2] && c[2] <= blob.len)) {
                PyErr_SetString(PyExc_ValueError, "cuts out of order or beyond the blob");
                goto fail;
            }
            size = (Py_ssize_t)(c[2] - prev) + 20 + time_json.len;
            prev = (Py_ssize_t)c[2];
        }
        if (size > PY_SSIZE_T_MAX - total - 1) {
            PyErr_NoMemory();
            goto fail;
        }
        total += size;
    }
    if (n_slow != PyList_GET_SIZE(slow)) {
        PyErr_SetString(PyExc_ValueError, "slow holds more leaves than open cuts");
        goto fail;
    }
    if (n > PY_SSIZE_T_MAX / HASH) {
        PyErr_NoMemory();
        goto fail;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    ends_obj = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    hashes_obj = PyBytes_FromStringAndSize(NULL, n * HASH);
    if (out == NULL || ends_obj == NULL || hashes_obj == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto fail;
    }
    char *o = PyBytes_AS_STRING(out);
    int64_t *ends = (int64_t *)PyBytes_AS_STRING(ends_obj);
    unsigned char *hashes = (unsigned char *)PyBytes_AS_STRING(hashes_obj);
    const char *src = blob.buf;
    Py_ssize_t w = 0;
    Py_ssize_t slow_total = n_slow;
    prev = n_slow = 0;
    /* Without Python objects to read (no slow leaves), the copy and hashing touch only buffers
     * this call owns or holds (Py_buffer): other threads may run meanwhile. */
    PyThreadState *released = slow_total == 0 ? PyEval_SaveThread() : NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *c = cuts + 3 * i;
        Py_ssize_t begin = w;
        if (c[0] == -1) {
            PyObject *leaf = PyList_GET_ITEM(slow, n_slow++);
            Py_ssize_t len = PyBytes_GET_SIZE(leaf);
            memcpy(o + w, PyBytes_AS_STRING(leaf), (size_t)len);
            w += len;
        } else {
            char num[24];
            int k = format_ll(num, start + (long long)i);
            memcpy(o + w, src + prev, (size_t)(c[0] - prev));
            w += c[0] - prev;
            memcpy(o + w, num, (size_t)k);
            w += k;
            memcpy(o + w, src + c[0], (size_t)(c[1] - c[0]));
            w += c[1] - c[0];
            memcpy(o + w, time_json.buf, (size_t)time_json.len);
            w += time_json.len;
            memcpy(o + w, src + c[1], (size_t)(c[2] - c[1]));
            w += c[2] - c[1];
            prev = (Py_ssize_t)c[2];
        }
        ends[i] = w;
        /* RFC 9162 2.1.1: the leaf hash covers a 0x00 prefix */
        sha256_prefixed(0, (const unsigned char *)o + begin, (size_t)(w - begin),
                        hashes + HASH * i);
    }
    if (released != NULL)
        PyEval_RestoreThread(released);
    /* the index digits were sized at 20 each; give back what they did not use */
    if (_PyBytes_Resize(&out, w) < 0)
        goto fail;
    result = Py_BuildValue("(OOO)", out, ends_obj, hashes_obj);
fail:
    Py_XDECREF(out);
    Py_XDECREF(ends_obj);
    Py_XDECREF(hashes_obj);
    PyBuffer_Release(&blob);
    PyBuffer_Release(&cutbuf);
    PyBuffer_Release(&time_json);
    return result;
}

/* mth(hashes, start, count): RFC 9162 2.1.1 MTH over hashes[start:start+count] taken as leaf
 * hashes (already hashed), with the stack algorithm: O(log n) memory, no recursion. */
static PyObject *mth(PyObject *self, PyObject *args) {
    Py_buffer hb;
    Py_ssize_t start, count;
    if (!PyArg_ParseTuple(args, "y*nn:mth", &hb, &start, &count))
        return NULL;
    if (hb.len % HASH != 0 || start < 0 || count < 0 || start > hb.len / HASH ||
        count > hb.len / HASH - start) {
        PyBuffer_Release(&hb);
        PyErr_SetString(PyExc_ValueError, "mth: range outside the hashes");
        return NULL;
    }
    unsigned char out[HASH];
    if (count == 0) {
        sha256((const unsigned char *)"", 0, out);
    } else {
        unsigned char stack[64][HASH];
        int levels[64];
        int top = 0;
        unsigned char node[1 + 2 * HASH];
        const unsigned char *h = (const unsigned char *)hb.buf + HASH * start;
        node[0] = 1;
        for (Py_ssize_t i = 0; i < count; i++) {
            unsigned char acc[HASH];
            int level = 0;
            memcpy(acc, h + HASH * i, HASH);
            while (top > 0 && levels[top - 1] == level) {
                memcpy(node + 1, stack[top - 1], HASH);
                memcpy(node + 1 + HASH, acc, HASH);
                sha256(node, sizeof node, acc);
                top--;
                level++;
            }
            memcpy(stack[top], acc, HASH); /* top < 64: count < 2**63 */
            levels[top++] = level;
        }
        memcpy(out, stack[top - 1], HASH);
        for (int i = top - 2; i >= 0; i--) {
            memcpy(node + 1, stack[i], HASH);
            memcpy(node + 1 + HASH, out, HASH);
            sha256(node, sizeof node, out);
        }
    }
    PyBuffer_Release(&hb);
    return PyBytes_FromStringAndSize((const char *)out, HASH);
}

/* ends32(ends, first, count, shift) -> bytes: ``count`` little-endian uint32, each
 * ends[first + i] + shift, where ``ends`` holds native int64 (as leaves() returns them). This
 * is how a bundle's end offsets are cut from a batch's: rebased to the bundle's first byte. */
static PyObject *ends32(PyObject *self, PyObject *args) {
    Py_buffer eb;
    Py_ssize_t first, count;
    long long shift;
    if (!PyArg_ParseTuple(args, "y*nnL:ends32", &eb, &first, &count, &shift))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t n = eb.len / (Py_ssize_t)sizeof(int64_t);
    if (eb.len % (Py_ssize_t)sizeof(int64_t) != 0 || first < 0 || count < 0 || first > n ||
        count > n - first) {
        PyErr_SetString(PyExc_ValueError, "ends32: range outside the ends");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, count * 4);
    if (out == NULL)
        goto done;
    const int64_t *ends = (const int64_t *)eb.buf + first;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < count; i++) {
        long long v;
        if (__builtin_add_overflow((long long)ends[i], shift, &v) || v < 0 || v > 0xFFFFFFFFLL) {
            PyErr_SetString(PyExc_ValueError, "ends32: an offset does not fit in 32 bits");
            Py_CLEAR(out);
            goto done;
        }
        o[4 * i] = (unsigned char)(v & 0xFF);
        o[4 * i + 1] = (unsigned char)((v >> 8) & 0xFF);
        o[4 * i + 2] = (unsigned char)((v >> 16) & 0xFF);
        o[4 * i + 3] = (unsigned char)((v >> 24) & 0xFF);
    }
done:
    PyBuffer_Release(&eb);
    return out;
}

static PyObject *RECEIPT_FIELDS[4];

/* receipts(cls, start, hashes, tree_size, root) -> list of cls instances, one per 32-byte
 * hash, with fields index, leaf_hash, tree_size, root. ``cls`` is the Receipt dataclass;
 * instances are made as object.__new__(cls) plus object.__setattr__ per field, which is what
 * a frozen dataclass's own __init__ does, without its Python-level overhead. */
static PyObject *receipts(PyObject *self, PyObject *args) {
    PyTypeObject *cls;
    long long start;
    Py_buffer hb;
    PyObject *size, *root;
    if (!PyArg_ParseTuple(args, "O!Ly*OO:receipts", &PyType_Type, &cls, &start, &hb, &size, &root))
        return NULL;
    PyObject *list = NULL, *empty = NULL;
    if (cls->tp_new != PyBaseObject_Type.tp_new) {
        /* object.__new__ is only safe for classes laid out as plain objects (a dataclass) */
        PyErr_SetString(PyExc_TypeError, "receipts: cls must be a plain class");
        goto done;
    }
    if (hb.len % HASH != 0 || start < 0) {
        PyErr_SetString(PyExc_ValueError, "receipts: hashes must be 32 bytes each, start >= 0");
        goto done;
    }
    Py_ssize_t n = hb.len / HASH;
    /* A receipt holds two ints and two bytes and nothing else (a frozen class with __slots__,
     * no __dict__): it can never be part of a reference cycle, so the cycle collector need not
     * track it. Batches make tens of thousands at once; tracked, they trigger collections that
     * walk them and every other young object again and again (measured: 0.44 -> 0.10 us per
     * receipt beside a caller holding 200,000 dicts). Anything else stays tracked. */
    int untrack = cls->tp_dictoffset == 0 && PyLong_CheckExact(size) && PyBytes_CheckExact(root);
    empty = PyTuple_New(0);
    list = empty ? PyList_New(n) : NULL;
    if (list == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *obj = PyBaseObject_Type.tp_new(cls, empty, NULL);
        if (obj == NULL)
            goto fail;
        PyList_SET_ITEM(list, i, obj); /* the list owns it from here, even if filling fails */
        PyObject *index = PyLong_FromLongLong(start + i);
        PyObject *digest = PyBytes_FromStringAndSize((const char *)hb.buf + HASH * i, HASH);
        int rc = (index == NULL || digest == NULL ||
                  PyObject_GenericSetAttr(obj, RECEIPT_FIELDS[0], index) < 0 ||
                  PyObject_GenericSetAttr(obj, RECEIPT_FIELDS[1], digest) < 0 ||
                  PyObject_GenericSetAttr(obj, RECEIPT_FIELDS[2], size) < 0 ||
                  PyObject_GenericSetAttr(obj, RECEIPT_FIELDS[3], root) < 0)
                     ? -1
                     : 0;
        Py_XDECREF(index);
        Py_XDECREF(digest);
        if (rc < 0)
            goto fail;
        if (untrack && PyObject_GC_IsTracked(obj))
            PyObject_GC_UnTrack(obj);
    }
    goto done;
fail:
    Py_CLEAR(list);
done:
    Py_XDECREF(empty);
    PyBuffer_Release(&hb);
    return list;
}

static PyMethodDef methods[] = {
    {"receipts", receipts, METH_VARARGS, "Receipt objects for a run of leaf hashes."},
    {"ends32", ends32, METH_VARARGS, "A bundle's uint32 end offsets cut from a batch's."},
    {"canonical", canonical, METH_O, "RFC 8785 canonical JSON of a plain value, or None."},
    {"templates", templates, METH_O, "Canonicalise entries with index/recorded_at left open."},
    {"leaves", leaves, METH_VARARGS, "Fill in a batch of templates and hash the leaves."},
    {"mth", mth, METH_VARARGS, "RFC 9162 Merkle tree hash of a run of 32-byte hashes."},
    {NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *module) {
    INDEX_KEY = PyUnicode_InternFromString("index");
    TIME_KEY = PyUnicode_InternFromString("recorded_at");
    if (INDEX_KEY == NULL || TIME_KEY == NULL)
        return -1;
    static const char *names[4] = {"index", "leaf_hash", "tree_size", "root"};
    for (int i = 0; i < 4; i++)
        if ((RECEIPT_FIELDS[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return -1;
    return 0;
}

static PyModuleDef_Slot slots[] = {{Py_mod_exec, exec_module}, {0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "custodes.ledger._native", "The ledger's hot path in C.", 0, methods,
    slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&module_def); }
