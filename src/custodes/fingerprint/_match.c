/* The chaining step of custodes.fingerprint.match in C: the same regions as match.py's
 * _chain (the tests pin the two against each other), for the candidate files of every
 * scanned file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* One (scanned position, indexed position, scanned start, scanned end, indexed start,
 * indexed end) pair. */
#define BOUND (1LL << 61)

typedef struct {
    long long s_pos, t_pos, s_start, s_end, t_start, t_end;
} Pair;

static int read_pairs(PyObject *list, Pair *out, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 6) {
            PyErr_SetString(PyExc_TypeError, "chain: each pair must be a tuple of 6 ints");
            return -1;
        }
        long long *fields = &out[i].s_pos;
        for (Py_ssize_t f = 0; f < 6; f++) {
            PyObject *value = PyTuple_GET_ITEM(item, f);
            if (!PyLong_Check(value)) {
                PyErr_SetString(PyExc_TypeError, "chain: each pair must be a tuple of 6 ints");
                return -1;
            }
            fields[f] = PyLong_AsLongLong(value);
            if (fields[f] == -1 && PyErr_Occurred()) return -1;
            /* Differences of two fields must not overflow: lines and positions are far below
             * this; anything beyond is left to the Python path. */
            if (fields[f] > BOUND || fields[f] < -BOUND) {
                PyErr_SetString(PyExc_OverflowError, "chain: a field is out of range");
                return -1;
            }
        }
    }
    return 0;
}

static PyObject *region(long long s0, long long s1, long long t0, long long t1) {
    return Py_BuildValue("(LLLL)", s0, s1, t0, t1);
}

/* chain(pairs, gap, lookback) -> [(s0, s1, t0, t1), …]
 *
 * `pairs` sorted. A longest-chain dynamic programme, each pair looking back at up to
 * `lookback` predecessors (ties to the closest diagonal), then chains taken best first, each
 * pair in one chain only: see match.py's _chain for why. */
static PyObject *chain(PyObject *self, PyObject *args) {
    PyObject *list;
    long long gap;
    Py_ssize_t lookback;
    if (!PyArg_ParseTuple(args, "O!Ln:chain", &PyList_Type, &list, &gap, &lookback)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    PyObject *out = PyList_New(0);
    if (out == NULL || n < 2) return out;
    Pair *p = PyMem_Malloc(sizeof(Pair) * (size_t)n);
    Py_ssize_t *score = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
    Py_ssize_t *prev = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
    Py_ssize_t *order = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
    Py_ssize_t *count = PyMem_Calloc((size_t)n + 2, sizeof(Py_ssize_t));
    char *used = PyMem_Calloc((size_t)n, 1);
    if (p == NULL || score == NULL || prev == NULL || order == NULL || count == NULL ||
        used == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (read_pairs(list, p, n) < 0) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long diagonal = p[i].t_pos - p[i].s_pos;
        Py_ssize_t best = 1, best_j = -1;
        long long best_d = 0;
        Py_ssize_t stop = i - lookback - 1 > -1 ? i - lookback - 1 : -1;
        for (Py_ssize_t j = i - 1; j > stop; j--) {
            if (p[i].s_start - p[j].s_end > gap) break; /* earlier pairs are further still */
            if (p[j].s_pos >= p[i].s_pos || p[j].t_pos >= p[i].t_pos ||
                p[i].t_start - p[j].t_end > gap)
                continue;
            Py_ssize_t cand = score[j] + 1;
            if (cand < best) continue;
            long long d = diagonal - (p[j].t_pos - p[j].s_pos);
            if (d < 0) d = -d;
            if (cand > best || (best_j >= 0 && d < best_d)) {
                best = cand;
                best_j = j;
                best_d = d;
            }
        }
        score[i] = best;
        prev[i] = best_j;
    }
    /* Pairs by score, highest first, ties in index order (Python's stable sort with
     * reverse=True): a counting sort, scores being at most n. */
    for (Py_ssize_t i = 0; i < n; i++) count[score[i]]++;
    for (Py_ssize_t s = n, at = 0; s >= 1; s--) {
        Py_ssize_t c = count[s];
        count[s] = at;
        at += c;
    }
    for (Py_ssize_t i = 0; i < n; i++) order[count[score[i]]++] = i;
    for (Py_ssize_t o = 0; o < n; o++) {
        Py_ssize_t i = order[o];
        if (used[i] || score[i] < 2) continue;
        Py_ssize_t members = 0;
        long long s0 = 0, s1 = 0, t0 = 0, t1 = 0;
        for (Py_ssize_t k = i; k != -1 && !used[k]; k = prev[k]) {
            used[k] = 1;
            if (members == 0 || p[k].s_start < s0) s0 = p[k].s_start;
            if (members == 0 || p[k].s_end > s1) s1 = p[k].s_end;
            if (members == 0 || p[k].t_start < t0) t0 = p[k].t_start;
            if (members == 0 || p[k].t_end > t1) t1 = p[k].t_end;
            members++;
        }
        if (members >= 2) {
            PyObject *r = region(s0, s1, t0, t1);
            if (r == NULL || PyList_Append(out, r) < 0) {
                Py_XDECREF(r);
                goto fail;
            }
            Py_DECREF(r);
        }
    }
    PyMem_Free(p);
    PyMem_Free(score);
    PyMem_Free(prev);
    PyMem_Free(order);
    PyMem_Free(count);
    PyMem_Free(used);
    return out;
fail:
    Py_DECREF(out);
    PyMem_Free(p);
    PyMem_Free(score);
    PyMem_Free(prev);
    PyMem_Free(order);
    PyMem_Free(count);
    PyMem_Free(used);
    return NULL;
}

static PyMethodDef methods[] = {
    {"chain", chain, METH_VARARGS,
     "chain(sorted pairs, gap, lookback): regions (s0, s1, t0, t1), as match._chain makes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "custodes.fingerprint._match",
    "C accelerator of custodes.fingerprint.match (same results as its Python path).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__match(void) { return PyModule_Create(&module); }
