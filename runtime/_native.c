/* runtime._native: the model's per-token work in C (built by `python -m runtime.build`).
 *
 * The pure-Python path (runtime/text.py, runtime/classifier.py) is the definition; these functions
 * must return exactly what it returns, to the last bit (tests/runtime/test_native.py compares both
 * on every corpus text and on generated text). What is here and why:
 *
 *   word_tokens(text)  prepared (ASCII, lower-cased) text -> its token stream: [a-z]+ | [0-9]+ | one
 *                      other character, digit runs as "numtoken", runs of one punctuation mark made
 *                      one, joined by single spaces. In Python that is a regex per new word, a memo
 *                      lookup per word and a regex pass over the stream (~28 us on a 2 KB e-mail).
 *   Scorer.sums(text, tf)
 *                      a normalised text -> (dot, squares, terms found) of the tf-idf dot product:
 *                      word ids by hashing, unigram columns by indexing, bigram columns by binary
 *                      search within the bigrams of the first word, then the terms counted in
 *                      ascending column order and summed in that order, as the numpy path does.
 *
 * Floating point: sums are accumulated one term at a time in ascending column order from 0.0, with
 * tf taken from the caller's table (1 + ln k, computed by numpy), and the build disables contraction
 * into fused multiply-adds, so each operation is the one numpy performs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The whitespace str.split() and the regex \s agree on, restricted to ASCII. */
static inline int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}
static inline int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static const char NUMBER_TOKEN[] = "numtoken";
#define NUMBER_TOKEN_LEN (sizeof(NUMBER_TOKEN) - 1)

static const unsigned char *ascii_data(PyObject *text, Py_ssize_t *length) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) return NULL;
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError,
                        "text must be ASCII: runtime.text prepares it (HTML, entities, folding) first");
        return NULL;
    }
    *length = PyUnicode_GET_LENGTH(text);
    return PyUnicode_1BYTE_DATA(text);
}

static PyObject *word_tokens(PyObject *Py_UNUSED(module), PyObject *text) {
    Py_ssize_t n;
    const unsigned char *s = ascii_data(text, &n);
    if (s == NULL) return NULL;
    /* At most a space per character, and each digit run grows to "numtoken": size the buffer by
     * the runs (a 20 KB text would otherwise ask for 180 KB). */
    Py_ssize_t digit_runs = 0;
    for (Py_ssize_t j = 0; j < n; j++) digit_runs += is_digit(s[j]) && (j == 0 || !is_digit(s[j - 1]));
    if (n > (PY_SSIZE_T_MAX - 1) / (Py_ssize_t)(NUMBER_TOKEN_LEN + 2)) return PyErr_NoMemory();
    char *out = PyMem_Malloc((size_t)(2 * n + digit_runs * (Py_ssize_t)(NUMBER_TOKEN_LEN - 1)) + 1);
    if (out == NULL) return PyErr_NoMemory();
    Py_ssize_t len = 0, i = 0;
    int last_mark = -1; /* the previous token, if it was one punctuation mark */
    while (i < n) {
        unsigned char c = s[i];
        if (is_space(c)) {
            i++;
            continue;
        }
        if (is_lower(c) || is_digit(c)) {
            Py_ssize_t start = i;
            int digits = is_digit(c);
            while (i < n && (digits ? is_digit(s[i]) : is_lower(s[i]))) i++;
            if (len) out[len++] = ' ';
            if (digits) {
                memcpy(out + len, NUMBER_TOKEN, NUMBER_TOKEN_LEN);
                len += NUMBER_TOKEN_LEN;
            } else {
                memcpy(out + len, s + start, (size_t)(i - start));
                len += i - start;
            }
            last_mark = -1;
            continue;
        }
        i++;
        if (c == last_mark) continue; /* "- - -" is layout: one mark stands for the run */
        if (len) out[len++] = ' ';
        out[len++] = (char)c;
        last_mark = c;
    }
    PyObject *result = PyUnicode_New(len, 127);
    if (result != NULL) memcpy(PyUnicode_1BYTE_DATA(result), out, (size_t)len);
    PyMem_Free(out);
    return result;
}

/* ---- Scorer ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    /* word -> id: open addressing over a power-of-two table; slot_id -1 = empty */
    Py_ssize_t n_words; /* also the id of every unknown word */
    size_t mask;
    int32_t *slot_id;
    uint32_t *slot_hash;
    char *blob; /* the words' UTF-8 bytes, back to back */
    size_t *word_start;
    uint32_t *word_len;
    /* bigram_first[a] .. bigram_first[a + 1]: the bigram keys whose first word is a */
    Py_ssize_t *bigram_first;
    Py_buffer unigram_column, bigram_keys, bigram_columns, weighted_idf, idf_squared;
    Py_ssize_t n_terms;
} Scorer;

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static Py_ssize_t word_id(const Scorer *self, const unsigned char *p, size_t n) {
    uint64_t h = hash_bytes(p, n);
    for (size_t i = (size_t)h & self->mask;; i = (i + 1) & self->mask) {
        int32_t id = self->slot_id[i];
        if (id < 0) return self->n_words;
        if (self->slot_hash[i] == (uint32_t)h && self->word_len[id] == n &&
            memcmp(self->blob + self->word_start[id], p, n) == 0)
            return id;
    }
}

static void release_buffer(Py_buffer *view) {
    if (view->obj != NULL) PyBuffer_Release(view);
}

static void Scorer_dealloc(Scorer *self) {
    PyMem_Free(self->slot_id);
    PyMem_Free(self->slot_hash);
    PyMem_Free(self->blob);
    PyMem_Free(self->word_start);
    PyMem_Free(self->word_len);
    PyMem_Free(self->bigram_first);
    release_buffer(&self->unigram_column);
    release_buffer(&self->bigram_keys);
    release_buffer(&self->bigram_columns);
    release_buffer(&self->weighted_idf);
    release_buffer(&self->idf_squared);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A 1-D C-contiguous buffer of 8-byte items of the given kind ('i' integer, 'f' float). */
static int get_array(PyObject *obj, Py_buffer *view, char kind, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    int ok = view->ndim == 1 && view->itemsize == 8 &&
             (kind == 'f' ? strcmp(f, "d") == 0 : (strcmp(f, "l") == 0 || strcmp(f, "q") == 0));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be a 1-D contiguous %s array", name,
                     kind == 'f' ? "float64" : "int64");
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

static int Scorer_init(Scorer *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"words",        "unigram_column", "bigram_keys", "bigram_columns",
                             "weighted_idf", "idf_squared",    NULL};
    PyObject *words, *uni, *keys, *cols, *widf, *isq;
    if (self->slot_id != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scorer is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOO", kwlist, &words, &uni, &keys, &cols, &widf, &isq))
        return -1;
    PyObject *seq = PySequence_Fast(words, "words must be a sequence of str");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int status = -1;
    if (n >= INT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "too many words");
        goto done;
    }
    if (get_array(uni, &self->unigram_column, 'i', "unigram_column") < 0 ||
        get_array(keys, &self->bigram_keys, 'i', "bigram_keys") < 0 ||
        get_array(cols, &self->bigram_columns, 'i', "bigram_columns") < 0 ||
        get_array(widf, &self->weighted_idf, 'f', "weighted_idf") < 0 ||
        get_array(isq, &self->idf_squared, 'f', "idf_squared") < 0)
        goto done;
    self->n_terms = self->weighted_idf.len / 8;
    if (self->unigram_column.len / 8 != n + 1 || self->idf_squared.len / 8 != self->n_terms ||
        self->bigram_keys.len != self->bigram_columns.len || self->bigram_keys.len == 0) {
        PyErr_SetString(PyExc_ValueError,
                        "array lengths disagree: unigram_column needs len(words) + 1 entries, bigram_keys "
                        "(with its sentinel) as many as bigram_columns, idf_squared as many as weighted_idf");
        goto done;
    }
    /* Every column a lookup can yield must index the term arrays. */
    const int64_t *uc = self->unigram_column.buf, *bc = self->bigram_columns.buf, *bk = self->bigram_keys.buf;
    Py_ssize_t n_keys = self->bigram_keys.len / 8;
    for (Py_ssize_t i = 0; i <= n; i++)
        if (uc[i] >= self->n_terms) goto bad_column;
    for (Py_ssize_t i = 0; i < n_keys; i++)
        if (bc[i] >= self->n_terms) goto bad_column;
    for (Py_ssize_t i = 1; i < n_keys; i++)
        if (bk[i] < bk[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "bigram_keys must be sorted");
            goto done;
        }

    size_t total = 0;
    self->word_start = PyMem_Malloc(sizeof(size_t) * (size_t)(n + 1));
    self->word_len = PyMem_Malloc(sizeof(uint32_t) * (size_t)(n + 1));
    if (self->word_start == NULL || self->word_len == NULL) goto no_memory;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size;
        PyObject *word = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(word) || PyUnicode_AsUTF8AndSize(word, &size) == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "words must be str");
            goto done;
        }
        if (size > UINT32_MAX) goto no_memory;
        self->word_start[i] = total;
        self->word_len[i] = (uint32_t)size;
        total += (size_t)size;
    }
    self->blob = PyMem_Malloc(total + 1);
    size_t capacity = 16;
    while (capacity < 2 * (size_t)n) capacity <<= 1;
    self->mask = capacity - 1;
    self->slot_id = PyMem_Malloc(sizeof(int32_t) * capacity);
    self->slot_hash = PyMem_Malloc(sizeof(uint32_t) * capacity);
    if (self->blob == NULL || self->slot_id == NULL || self->slot_hash == NULL) goto no_memory;
    memset(self->slot_id, 0xff, sizeof(int32_t) * capacity);
    self->n_words = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *utf8 = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        const unsigned char *p = (const unsigned char *)self->blob + self->word_start[i];
        memcpy(self->blob + self->word_start[i], utf8, self->word_len[i]);
        uint64_t h = hash_bytes(p, self->word_len[i]);
        size_t slot = (size_t)h & self->mask;
        /* A repeated word takes the later id, as dict(zip(words, ids)) does. */
        while (self->slot_id[slot] >= 0 &&
               !(self->word_len[self->slot_id[slot]] == self->word_len[i] &&
                 memcmp(self->blob + self->word_start[self->slot_id[slot]], p, self->word_len[i]) == 0))
            slot = (slot + 1) & self->mask;
        self->slot_id[slot] = (int32_t)i;
        self->slot_hash[slot] = (uint32_t)h;
    }
    /* bigram_first: keys are first_id * (n + 1) + second_id, so each first word owns a sorted run. */
    self->bigram_first = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n + 2));
    if (self->bigram_first == NULL) goto no_memory;
    Py_ssize_t k = 0;
    for (Py_ssize_t a = 0; a <= n + 1; a++) {
        int64_t lowest = (int64_t)a * (int64_t)(n + 1);
        while (k < n_keys - 1 && bk[k] < lowest) k++; /* the last key is the sentinel */
        self->bigram_first[a] = k;
    }
    status = 0;
    goto done;
bad_column:
    PyErr_SetString(PyExc_ValueError, "a lookup table points past the last term");
    goto done;
no_memory:
    PyErr_NoMemory();
done:
    Py_DECREF(seq);
    return status;
}

/* Ascending order of small non-negative integers: insertion sort for a few, else LSD radix, with
 * `scratch` (n entries) from the caller and the bucket counts on the stack: no allocation per call. */
static void sort_columns(uint32_t *a, uint32_t *scratch, Py_ssize_t n, uint32_t largest) {
    if (n <= 48) {
        for (Py_ssize_t i = 1; i < n; i++) {
            uint32_t v = a[i];
            Py_ssize_t j = i;
            while (j > 0 && a[j - 1] > v) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = v;
        }
        return;
    }
    enum { BITS = 11, BUCKETS = 1 << BITS };
    Py_ssize_t count[BUCKETS];
    uint32_t *src = a, *dst = scratch;
    for (int shift = 0; shift < 32 && (largest >> shift) != 0; shift += BITS) {
        memset(count, 0, sizeof(count));
        for (Py_ssize_t i = 0; i < n; i++) count[(src[i] >> shift) & (BUCKETS - 1)]++;
        Py_ssize_t total = 0;
        for (int b = 0; b < BUCKETS; b++) {
            Py_ssize_t c = count[b];
            count[b] = total;
            total += c;
        }
        for (Py_ssize_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & (BUCKETS - 1)]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, sizeof(uint32_t) * (size_t)n);
}

static PyObject *Scorer_sums(Scorer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sums(text, tf) takes exactly two arguments");
        return NULL;
    }
    if (self->slot_id == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scorer is not initialised");
        return NULL;
    }
    Py_ssize_t n;
    const unsigned char *s = ascii_data(args[0], &n);
    if (s == NULL) return NULL;
    Py_buffer tf_view;
    if (get_array(args[1], &tf_view, 'f', "tf") < 0) return NULL;
    const double *tf = tf_view.buf;
    Py_ssize_t tf_len = tf_view.len / 8;

    PyObject *result = NULL;
    /* At most (n + 1) / 2 tokens; a unigram and a bigram column each, and as much again for sorting. */
    Py_ssize_t most = 2 * (n / 2 + 1);
    uint32_t *columns = PyMem_Malloc(sizeof(uint32_t) * 2 * (size_t)most);
    if (columns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const int64_t *unigram = self->unigram_column.buf, *keys = self->bigram_keys.buf;
    const int64_t *bigram_columns = self->bigram_columns.buf;
    const Py_ssize_t unknown = self->n_words;
    Py_ssize_t found = 0, previous = unknown, i = 0;
    uint32_t largest = 0;
    while (i < n) {
        if (is_space(s[i])) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < n && !is_space(s[i])) i++;
        Py_ssize_t id = word_id(self, s + start, (size_t)(i - start));
        int64_t column = unigram[id];
        if (column >= 0) {
            columns[found++] = (uint32_t)column;
            if ((uint32_t)column > largest) largest = (uint32_t)column;
        }
        if (previous != unknown && id != unknown) {
            int64_t key = (int64_t)previous * (int64_t)(unknown + 1) + (int64_t)id;
            Py_ssize_t lo = self->bigram_first[previous], hi = self->bigram_first[previous + 1];
            while (lo < hi) {
                Py_ssize_t mid = lo + (hi - lo) / 2;
                if (keys[mid] < key)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (keys[lo] == key && bigram_columns[lo] >= 0) {
                column = bigram_columns[lo];
                columns[found++] = (uint32_t)column;
                if ((uint32_t)column > largest) largest = (uint32_t)column;
            }
        }
        previous = id;
    }
    sort_columns(columns, columns + most, found, largest);
    const double *weighted_idf = self->weighted_idf.buf, *idf_squared = self->idf_squared.buf;
    double dot = 0.0, squares = 0.0;
    for (Py_ssize_t j = 0; j < found;) {
        uint32_t column = columns[j];
        Py_ssize_t run = j;
        while (j < found && columns[j] == column) j++;
        Py_ssize_t count = j - run;
        if (count >= tf_len) { /* the caller grows its table and asks again */
            result = Py_NewRef(Py_None);
            goto done;
        }
        double t = tf[count];
        dot += weighted_idf[column] * t;
        squares += idf_squared[column] * (t * t);
    }
    result = Py_BuildValue("ddn", dot, squares, found);
done:
    PyMem_Free(columns);
    PyBuffer_Release(&tf_view);
    return result;
}

static PyMethodDef Scorer_methods[] = {
    {"sums", (PyCFunction)(void (*)(void))Scorer_sums, METH_FASTCALL,
     "sums(normalized, tf) -> (dot, squares, found) or None when a term occurs len(tf) times or more"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "runtime._native.Scorer",
    .tp_doc = PyDoc_STR("Scorer(words, unigram_column, bigram_keys, bigram_columns, weighted_idf, idf_squared)"),
    .tp_basicsize = sizeof(Scorer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scorer_init,
    .tp_dealloc = (destructor)Scorer_dealloc,
    .tp_methods = Scorer_methods,
};

static PyMethodDef module_methods[] = {
    {"word_tokens", word_tokens, METH_O,
     "word_tokens(prepared) -> the token stream of ASCII lower-cased text (see runtime.text)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "runtime._native", "The model's per-token work in C (see _native.c).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&ScorerType) < 0) return NULL;
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL) return NULL;
    Py_INCREF(&ScorerType);
    if (PyModule_AddObject(module, "Scorer", (PyObject *)&ScorerType) < 0) {
        Py_DECREF(&ScorerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
