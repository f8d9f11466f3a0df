/* Winnowing in C: the rolling k-gram hashes, the window minima and the lines each selected
 * k-gram covers, for custodes.fingerprint.winnow.
 *
 * Each function computes exactly what its pure-Python twin in winnow.py computes (the tests
 * pin the two against each other), so that an index built with the extension matches a scan
 * run without it. Hashes are polynomials modulo the Mersenne prime 2**61 - 1; every value is
 * first reduced into [0, p) as Python's `%` does, so any value that fits in 64 bits gives the
 * Python result. A value that does not fit raises OverflowError and the caller falls back to
 * Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define PRIME ((uint64_t)0x1FFFFFFFFFFFFFFFULL) /* 2**61 - 1 */
#define LINE_BOUND (1LL << 61)
#define SPLIT_BOUND (1LL << 61)

/* a * b mod 2**61 - 1 for a, b < 2**61 - 1: the product's high bits fold onto its low bits
 * because 2**61 = 1 (mod p). */
static inline uint64_t mulmod(uint64_t a, uint64_t b) {
    unsigned __int128 x = (unsigned __int128)a * b;
    uint64_t r = (uint64_t)(x & PRIME) + (uint64_t)(x >> 61);
    r = (r & PRIME) + (r >> 61);
    return r >= PRIME ? r - PRIME : r;
}

/* Python's v % p, which is never negative. */
static inline uint64_t reduce(long long v) {
    long long r = v % (long long)PRIME;
    return (uint64_t)(r < 0 ? r + (long long)PRIME : r);
}

static uint64_t powmod(uint64_t base, Py_ssize_t exponent) {
    uint64_t result = 1 % PRIME;
    while (exponent > 0) {
        if (exponent & 1) result = mulmod(result, base);
        base = mulmod(base, base);
        exponent >>= 1;
    }
    return result;
}

/* The items of a sequence as a new C array of long long (NULL with an exception set).
 * An item that is not an int, or does not fit, raises. */
static long long *as_int64(PyObject *sequence, Py_ssize_t *count, const char *what) {
    PyObject *fast = PySequence_Fast(sequence, what);
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    /* At least one element, so that malloc(0) never has to be told from a failure. */
    long long *out = PyMem_Malloc(sizeof(long long) * (size_t)(n > 0 ? n : 1));
    if (out == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyLong_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "%s must hold ints", what);
            goto fail;
        }
        out[i] = PyLong_AsLongLong(items[i]);
        if (out[i] == -1 && PyErr_Occurred()) goto fail;
    }
    Py_DECREF(fast);
    *count = n;
    return out;
fail:
    PyMem_Free(out);
    Py_DECREF(fast);
    return NULL;
}

static PyObject *list_of(const long long *values, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyLong_FromLongLong(values[i]);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item); /* steals the reference */
    }
    return list;
}

/* Rolling hashes of every k consecutive values into out[0 .. n-k]; n >= k >= 1. */
static void rolling(const long long *values, Py_ssize_t n, Py_ssize_t k, uint64_t base,
                    long long *out) {
    uint64_t top = powmod(base, k - 1), h = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        h = mulmod(h, base) + reduce(values[i]);
        if (h >= PRIME) h -= PRIME;
    }
    out[0] = (long long)h;
    for (Py_ssize_t i = k; i < n; i++) {
        uint64_t drop = mulmod(reduce(values[i - k]), top);
        h = h >= drop ? h - drop : h + PRIME - drop;
        h = mulmod(h, base) + reduce(values[i]);
        if (h >= PRIME) h -= PRIME;
        out[i - k + 1] = (long long)h;
    }
}

/* Positions robust winnowing selects, written to out (room for n); returns how many. */
static Py_ssize_t select_minima(const long long *h, Py_ssize_t n, Py_ssize_t window,
                                Py_ssize_t *out) {
    if (n == 0 || window < 1) return 0;
    if (n <= window) { /* one window: its rightmost minimum */
        Py_ssize_t best = 0;
        for (Py_ssize_t i = 1; i < n; i++)
            if (h[i] <= h[best]) best = i;
        out[0] = best;
        return 1;
    }
    Py_ssize_t count = 0, chosen = -1;
    for (Py_ssize_t end = window - 1; end < n; end++) {
        Py_ssize_t start = end - window + 1;
        if (chosen < start) {
            /* The minimum left the window: search it again, keeping the rightmost. */
            chosen = start;
            for (Py_ssize_t i = start + 1; i <= end; i++)
                if (h[i] <= h[chosen]) chosen = i;
        } else if (h[end] <= h[chosen]) {
            chosen = end;
        }
        if (count == 0 || out[count - 1] != chosen) out[count++] = chosen;
    }
    return count;
}

static int check_base(long long base) {
    if (base < 0 || (uint64_t)base >= PRIME) {
        PyErr_SetString(PyExc_ValueError, "base must be in [0, 2**61 - 1)");
        return -1;
    }
    return 0;
}

static PyObject *kgram_hashes(PyObject *self, PyObject *args) {
    PyObject *values_obj;
    Py_ssize_t k;
    long long base;
    if (!PyArg_ParseTuple(args, "OnL:kgram_hashes", &values_obj, &k, &base)) return NULL;
    if (check_base(base) < 0) return NULL;
    Py_ssize_t n;
    long long *values = as_int64(values_obj, &n, "values");
    if (values == NULL) return NULL;
    if (k < 1 || n < k) {
        PyMem_Free(values);
        return PyList_New(0);
    }
    long long *hashes = PyMem_Malloc(sizeof(long long) * (size_t)(n - k + 1));
    if (hashes == NULL) {
        PyMem_Free(values);
        return PyErr_NoMemory();
    }
    rolling(values, n, k, (uint64_t)base, hashes);
    PyObject *result = list_of(hashes, n - k + 1);
    PyMem_Free(hashes);
    PyMem_Free(values);
    return result;
}

static PyObject *winnow(PyObject *self, PyObject *args) {
    PyObject *hashes_obj;
    Py_ssize_t window;
    if (!PyArg_ParseTuple(args, "On:winnow", &hashes_obj, &window)) return NULL;
    Py_ssize_t n;
    long long *hashes = as_int64(hashes_obj, &n, "hashes");
    if (hashes == NULL) return NULL;
    Py_ssize_t *positions = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n > 0 ? n : 1));
    if (positions == NULL) {
        PyMem_Free(hashes);
        return PyErr_NoMemory();
    }
    Py_ssize_t count = select_minima(hashes, n, window, positions);
    PyObject *result = PyList_New(count);
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *item = PyLong_FromSsize_t(positions[i]);
        if (item == NULL) Py_CLEAR(result);
        else PyList_SET_ITEM(result, i, item);
    }
    PyMem_Free(positions);
    PyMem_Free(hashes);
    return result;
}

/* ends.get(i, starts[i]) into *out; -1 with an exception set on failure. */
static int end_of(PyObject *ends, const long long *starts, Py_ssize_t i, long long *out) {
    if (PyDict_GET_SIZE(ends) == 0) {
        *out = starts[i];
        return 0;
    }
    PyObject *key = PyLong_FromSsize_t(i);
    if (key == NULL) return -1;
    PyObject *found = PyDict_GetItemWithError(ends, key); /* borrowed */
    Py_DECREF(key);
    if (found == NULL) {
        if (PyErr_Occurred()) return -1;
        *out = starts[i];
        return 0;
    }
    *out = PyLong_AsLongLong(found);
    if (*out == -1 && PyErr_Occurred()) return -1;
    if (*out > LINE_BOUND || *out < -LINE_BOUND) {
        PyErr_SetString(PyExc_OverflowError, "layer: a line is out of range");
        return -1;
    }
    return 0;
}

/* The first index in sorted a[0 .. n) greater than x (bisect_right). */
static Py_ssize_t bisect_right(const Py_ssize_t *a, Py_ssize_t n, Py_ssize_t x) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (x < a[mid]) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* layer(values, lines, ends, k, window, base, split, tag)
 *     -> (hashes | tag, positions, first lines, last lines)
 *
 * winnow.py's _layer: the k-gram hashes of values, the positions winnowing selects, and the
 * lines each selected k-gram covers (_spans: a k-gram across a gap of more than `split` lines
 * without items covers only the block holding most of its items). `lines` gives each item's
 * line, in order; `ends` the last line of items that span lines. */
static PyObject *layer(PyObject *self, PyObject *args) {
    PyObject *values_obj, *lines_obj, *ends;
    Py_ssize_t k, window;
    long long base, split, tag;
    if (!PyArg_ParseTuple(args, "OOO!nnLLL:layer", &values_obj, &lines_obj, &PyDict_Type, &ends,
                          &k, &window, &base, &split, &tag))
        return NULL;
    if (check_base(base) < 0) return NULL;
    if (k < 1 || window < 1) {
        PyErr_SetString(PyExc_ValueError, "k and window must be at least 1");
        return NULL;
    }
    if (split > SPLIT_BOUND || split < -SPLIT_BOUND) {
        PyErr_SetString(PyExc_OverflowError, "layer: split is out of range");
        return NULL;
    }
    PyObject *result = NULL, *out_hashes = NULL, *out_positions = NULL, *out_first = NULL,
             *out_last = NULL;
    long long *values = NULL, *starts = NULL, *hashes = NULL;
    Py_ssize_t *positions = NULL, *splits = NULL;
    Py_ssize_t n, n_lines, count = 0, n_splits = 0;

    values = as_int64(values_obj, &n, "values");
    if (values == NULL) goto done;
    starts = as_int64(lines_obj, &n_lines, "lines");
    if (starts == NULL) goto done;
    if (n_lines != n) {
        PyErr_SetString(PyExc_ValueError, "values and lines differ in length");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Lines are subtracted: far beyond any text's, they are left to the Python path. */
        if (starts[i] > LINE_BOUND || starts[i] < -LINE_BOUND) {
            PyErr_SetString(PyExc_OverflowError, "layer: a line is out of range");
            goto done;
        }
    }
    if (n >= k) {
        hashes = PyMem_Malloc(sizeof(long long) * (size_t)(n - k + 1));
        positions = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n - k + 1));
        splits = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
        if (hashes == NULL || positions == NULL || splits == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        rolling(values, n, k, (uint64_t)base, hashes);
        count = select_minima(hashes, n - k + 1, window, positions);
        /* Items that start a new block. Lines are in order, so the item before a jump holds
         * the previous distinct line (winnow.py's _splits, without its sort). */
        for (Py_ssize_t i = 1; i < n; i++) {
            if (starts[i] < starts[i - 1]) {
                PyErr_SetString(PyExc_ValueError, "lines must be in order");
                goto done;
            }
            if (starts[i] - starts[i - 1] > split) {
                long long end;
                if (end_of(ends, starts, i - 1, &end) < 0) goto done;
                if (starts[i] - end > split) splits[n_splits++] = i;
            }
        }
    }
    out_hashes = PyList_New(count);
    out_positions = PyList_New(count);
    out_first = PyList_New(count);
    out_last = PyList_New(count);
    if (out_hashes == NULL || out_positions == NULL || out_first == NULL || out_last == NULL)
        goto done;
    Py_ssize_t cut_at = 0; /* index in splits of the first block start after the k-gram's first item */
    for (Py_ssize_t j = 0; j < count; j++) {
        Py_ssize_t p = positions[j], first = p, last = p + k - 1;
        while (cut_at < n_splits && splits[cut_at] <= p) cut_at++;
        if (cut_at < n_splits && splits[cut_at] <= last) {
            /* _core: the block of first..last holding most items, the earliest of equals. */
            Py_ssize_t lo = bisect_right(splits, n_splits, first);
            Py_ssize_t hi = bisect_right(splits, n_splits, last);
            Py_ssize_t best_from = first, best_to = (lo < hi ? splits[lo] : last + 1);
            Py_ssize_t from = best_to;
            for (Py_ssize_t b = lo + 1; b <= hi; b++) {
                Py_ssize_t to = b < hi ? splits[b] : last + 1;
                if (to - from > best_to - best_from) {
                    best_from = from;
                    best_to = to;
                }
                from = to;
            }
            first = best_from;
            last = best_to - 1;
        }
        long long end;
        if (end_of(ends, starts, last, &end) < 0) goto done;
        PyObject *h = PyLong_FromLongLong(hashes[p] | tag);
        PyObject *pos = PyLong_FromSsize_t(p);
        PyObject *f = PyLong_FromLongLong(starts[first]);
        PyObject *e = PyLong_FromLongLong(end);
        if (h == NULL || pos == NULL || f == NULL || e == NULL) {
            Py_XDECREF(h);
            Py_XDECREF(pos);
            Py_XDECREF(f);
            Py_XDECREF(e);
            goto done;
        }
        PyList_SET_ITEM(out_hashes, j, h);
        PyList_SET_ITEM(out_positions, j, pos);
        PyList_SET_ITEM(out_first, j, f);
        PyList_SET_ITEM(out_last, j, e);
    }
    result = PyTuple_Pack(4, out_hashes, out_positions, out_first, out_last);
done:
    Py_XDECREF(out_hashes);
    Py_XDECREF(out_positions);
    Py_XDECREF(out_first);
    Py_XDECREF(out_last);
    PyMem_Free(values);
    PyMem_Free(starts);
    PyMem_Free(hashes);
    PyMem_Free(positions);
    PyMem_Free(splits);
    return result;
}


/* -- BLAKE2b-64 personalised "custodes-fp" (RFC 7693), winnow.symbol_value's hash ---------- */

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};
static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define ROTR64(x, n) (((x) >> (n)) | ((x) << (64 - (n))))
#define G(a, b, c, d, x, y)                                                                     \
    do {                                                                                        \
        a = a + b + (x); d = ROTR64(d ^ a, 32); c = c + d; b = ROTR64(b ^ c, 24);               \
        a = a + b + (y); d = ROTR64(d ^ a, 16); c = c + d; b = ROTR64(b ^ c, 63);               \
    } while (0)

static void compress(uint64_t h[8], const uint8_t block[128], uint64_t counter, int last) {
    uint64_t v[16], m[16];
    for (int i = 0; i < 16; i++) m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= counter; /* the high word of the counter stays 0: inputs are short */
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = SIGMA[r];
        G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
        G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
        G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
        G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
        G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
        G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
        G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
        G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* The state after the parameter block: digest length 8, no key, fanout and depth 1, no salt,
 * personalisation "custodes-fp" padded with zeros (winnow.py's _BLAKE). */
static uint64_t START[8];

static void init_start(void) {
    static const uint8_t person[16] = "custodes-fp";
    for (int i = 0; i < 8; i++) START[i] = IV[i];
    START[0] ^= 0x01010000ULL ^ 8;
    START[6] ^= load64(person);
    START[7] ^= load64(person + 8);
}

/* symbol_value(data) in winnow.py: BLAKE2b-64 of the bytes, read big-endian, mod 2**61 - 1. */
static uint64_t value_of(const uint8_t *data, Py_ssize_t length) {
    uint64_t h[8];
    uint8_t block[128];
    uint64_t counter = 0;
    memcpy(h, START, sizeof h);
    while (length > 128) {
        counter += 128;
        compress(h, data, counter, 0);
        data += 128;
        length -= 128;
    }
    memset(block, 0, sizeof block);
    if (length > 0) memcpy(block, data, (size_t)length);
    counter += (uint64_t)length;
    compress(h, block, counter, 1);
    /* The digest is h[0]'s bytes, least significant first; Python reads them big-endian. */
    uint64_t digest = 0;
    for (int i = 0; i < 8; i++) digest = (digest << 8) | ((h[0] >> (8 * i)) & 0xFF);
    return digest % PRIME;
}

static PyObject *symbol_value(PyObject *self, PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*:symbol_value", &data)) return NULL;
    uint64_t value = value_of(data.buf, data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(value);
}

/* raw_values(data, masked) -> (values, lines)
 *
 * The RAW layer's items (winnow.py's winnowed): for each non-empty line of `data` (the UTF-8
 * of the normalised text) whose 1-based number is not in `masked`, the line's value and its
 * number. UTF-8 holds a newline byte only where the text has a newline, so lines of the bytes
 * are the lines of the text. */
static PyObject *raw_values(PyObject *self, PyObject *args) {
    Py_buffer data;
    PyObject *masked;
    if (!PyArg_ParseTuple(args, "y*O:raw_values", &data, &masked)) return NULL;
    if (!PyAnySet_Check(masked)) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_TypeError, "raw_values: masked must be a set or frozenset");
        return NULL;
    }
    int check = PySet_GET_SIZE(masked) > 0;
    PyObject *values = PyList_New(0), *lines = PyList_New(0), *result = NULL;
    if (values == NULL || lines == NULL) goto done;
    const uint8_t *bytes = data.buf;
    Py_ssize_t start = 0, number = 1;
    for (Py_ssize_t i = 0; i <= data.len; i++) {
        if (i < data.len && bytes[i] != '\n') continue;
        if (i > start) {
            int skip = 0;
            if (check) {
                PyObject *key = PyLong_FromSsize_t(number);
                if (key == NULL) goto done;
                skip = PySet_Contains(masked, key);
                Py_DECREF(key);
                if (skip < 0) goto done;
            }
            if (!skip) {
                PyObject *v = PyLong_FromUnsignedLongLong(value_of(bytes + start, i - start));
                PyObject *n = PyLong_FromSsize_t(number);
                int failed = v == NULL || n == NULL || PyList_Append(values, v) < 0 ||
                             PyList_Append(lines, n) < 0;
                Py_XDECREF(v);
                Py_XDECREF(n);
                if (failed) goto done;
            }
        }
        start = i + 1;
        number++;
    }
    result = PyTuple_Pack(2, values, lines);
done:
    Py_XDECREF(values);
    Py_XDECREF(lines);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"kgram_hashes", kgram_hashes, METH_VARARGS,
     "kgram_hashes(values, k, base): rolling hashes modulo 2**61 - 1 of each k values."},
    {"winnow", winnow, METH_VARARGS,
     "winnow(hashes, window): positions of each window's rightmost minimum, once each."},
    {"layer", layer, METH_VARARGS,
     "layer(values, lines, ends, k, window, base, split, tag): one layer's fingerprints."},
    {"symbol_value", symbol_value, METH_VARARGS,
     "symbol_value(data): winnow.symbol_value of the text whose UTF-8 is data."},
    {"raw_values", raw_values, METH_VARARGS,
     "raw_values(data, masked): values and numbers of the non-empty, unmasked lines."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "custodes.fingerprint._winnow",
    "C accelerator of custodes.fingerprint.winnow (same results as its Python path).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__winnow(void) {
    init_start();
    return PyModule_Create(&module);
}
