/* Exact moments of a float64 array in one pass: monitor.stats.exact's integers, computed in C.
 *
 * Every finite double is m * 2**e with a 53-bit integer m and e >= -1074, so in units of 2**-1074
 * it is the integer m << (e + 1074), and its square is m*m << 2(e + 1074) in units of 2**-2148.
 * Values are first summed per exponent in 128-bit integers (one add and one multiply-add a value),
 * then each exponent's sums are shifted into fixed-point accumulators of radix-2**32 digits held in
 * int64, whose carries wait until the end. The results are the same integers monitor.stats.exact computes with numpy, by
 * construction: both are the exact sums (tests/monitor/stats/test_exact.py holds the two to it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* |x| < 2**1024 is < 2**2098 units; 2**64 of them < 2**2162 < 72 * 32 bits */
#define SUM_DIGITS 72
/* x*x < 2**2048 is < 2**4196 units; 2**64 of them < 2**4260 < 136 * 32 bits */
#define SQUARE_DIGITS 136

typedef unsigned __int128 u128;
typedef __int128 i128;

#define SHIFTS 2046 /* e + 1074 for every finite double: 0 (subnormals) .. 2045 */

static void propagate(int64_t *acc, int n) {
    for (int i = 0; i < n - 1; i++) {
        int64_t c = acc[i] >> 32; /* floor division by 2**32 (gcc and clang shift arithmetically) */
        acc[i] = (int64_t)((uint64_t)acc[i] & 0xFFFFFFFFu);
        acc[i + 1] += c;
    }
}

/* acc += sign * (v << shift), v < 2**128, in 32-bit chunks (each digit gets at most one) */
static void add_shifted(int64_t *acc, int shift, u128 v, int negative) {
    int d = shift >> 5, b = shift & 31;
    u128 lo = v << b;                          /* the low 128 bits of v << b */
    uint64_t hi = b ? (uint64_t)(v >> (128 - b)) : 0; /* the bits pushed past 128: < 2**31 */
    for (int k = 0; k < 4; k++) {
        int64_t chunk = (int64_t)(uint32_t)(lo >> (32 * k));
        acc[d + k] += negative ? -chunk : chunk;
    }
    acc[d + 4] += negative ? -(int64_t)hi : (int64_t)hi;
}

/* Per binary exponent first: a value adds its 53-bit mantissa m to sums[e] (signed, exact for
 * 2**74 values) and m*m to squares[e] (128 bits and a carry count); the few exponents in use are
 * then shifted into the digit accumulators. 0 when every value is finite; otherwise the index + 1
 * of the first one that is not (nothing is accumulated then). */
static Py_ssize_t accumulate(const double *x, Py_ssize_t n, i128 *sums, u128 *squares, uint64_t *carries,
                             int64_t *sum, int64_t *square) {
    int lowest = SHIFTS, highest = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        unsigned ex = (unsigned)(bits >> 52) & 0x7FFu;
        uint64_t m = bits & ((UINT64_C(1) << 52) - 1);
        if (ex == 0x7FFu)
            return i + 1;
        int sh = ex ? (int)ex - 1 : 0; /* e + 1074: a normal is (m + 2**52) * 2**(ex - 1075) */
        if (ex)
            m |= UINT64_C(1) << 52;
        sums[sh] += (bits >> 63) ? -(i128)m : (i128)m;
        u128 before = squares[sh];
        squares[sh] = before + (u128)m * m;
        carries[sh] += squares[sh] < before;
        lowest = sh < lowest ? sh : lowest;
        highest = sh > highest ? sh : highest;
    }
    for (int sh = lowest; sh <= highest; sh++) {
        if (sums[sh]) {
            int negative = sums[sh] < 0;
            add_shifted(sum, sh, negative ? (u128)(-sums[sh]) : (u128)sums[sh], negative);
        }
        if (squares[sh])
            add_shifted(square, 2 * sh, squares[sh], 0);
        if (carries[sh])
            add_shifted(square, 2 * sh + 128, carries[sh], 0);
    }
    propagate(sum, SUM_DIGITS);
    propagate(square, SQUARE_DIGITS);
    return 0;
}

/* digits 0 .. n-2 in [0, 2**32), the top one signed: little-endian two's complement bytes */
static PyObject *to_int(const int64_t *acc, int n) {
    unsigned char buf[4 * SQUARE_DIGITS + 8];
    for (int i = 0; i < n - 1; i++) {
        uint32_t v = (uint32_t)acc[i];
        for (int k = 0; k < 4; k++)
            buf[4 * i + k] = (unsigned char)(v >> (8 * k));
    }
    uint64_t top = (uint64_t)acc[n - 1];
    for (int k = 0; k < 8; k++)
        buf[4 * (n - 1) + k] = (unsigned char)(top >> (8 * k));
    return _PyLong_FromByteArray(buf, (size_t)(4 * (n - 1) + 8), 1, 1);
}

PyDoc_STRVAR(moments_doc,
             "moments(values) -> (sum, squares)\n\n"
             "The exact sum of a 1-D float64 buffer in units of 2**-1074 and of its squares in units of "
             "2**-2148, as integers. ValueError if a value is not finite.");

static PyObject *moments(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (view.ndim != 1 || view.itemsize != 8 || view.format == NULL ||
        !(strcmp(view.format, "d") == 0 || strcmp(view.format, "<d") == 0 || strcmp(view.format, "=d") == 0)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "moments() needs a 1-D contiguous float64 buffer");
        return NULL;
    }
    int64_t sum[SUM_DIGITS] = {0}, squares[SQUARE_DIGITS] = {0};
    Py_ssize_t n = view.shape ? view.shape[0] : view.len / 8, bad;
    /* one block: the per-exponent sums, squares (16-byte aligned first) and carry counts */
    char *block = PyMem_Calloc(SHIFTS, 2 * sizeof(u128) + sizeof(uint64_t));
    if (block == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    i128 *by_sum = (i128 *)block;
    u128 *by_square = (u128 *)(block + SHIFTS * sizeof(u128));
    uint64_t *by_carry = (uint64_t *)(block + 2 * SHIFTS * sizeof(u128));
    Py_BEGIN_ALLOW_THREADS
    bad = accumulate((const double *)view.buf, n, by_sum, by_square, by_carry, sum, squares);
    Py_END_ALLOW_THREADS
    PyMem_Free(block);
    PyBuffer_Release(&view);
    if (bad) {
        PyErr_Format(PyExc_ValueError, "moments() needs finite values: value %zd is not", bad - 1);
        return NULL;
    }
    PyObject *s = to_int(sum, SUM_DIGITS);
    if (s == NULL)
        return NULL;
    PyObject *q = to_int(squares, SQUARE_DIGITS);
    if (q == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    PyObject *out = PyTuple_Pack(2, s, q);
    Py_DECREF(s);
    Py_DECREF(q);
    return out;
}

PyDoc_STRVAR(buckets_doc,
             "buckets(keys, shift, bins, out) -> (shift, n)\n\n"
             "Buckets of sorted int64 keys (monitor.stats.grid.from_sorted_keys without counts or tags): at\n"
             "``shift``, or given ``bins`` > 0 at the finest shift >= ``shift`` where at most ``bins`` remain.\n"
             "Writes ids, cnt, lo, hi, nlo, nhi of the ``n`` buckets into the rows of ``out`` (int64, 6 x m,\n"
             "m >= the bucket count: len(keys), or min(len(keys), bins)) and returns the shift and ``n``.");

static int int64_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *f = view->format;
    if (view->itemsize != 8 || f == NULL ||
        !(strcmp(f, "q") == 0 || strcmp(f, "<q") == 0 || strcmp(f, "=q") == 0 || strcmp(f, "l") == 0 ||
          strcmp(f, "<l") == 0 || strcmp(f, "=l") == 0)) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "buckets() needs %s as a contiguous int64 buffer", what);
        return -1;
    }
    return 0;
}

/* highest bit in which a and b differ, plus one (0 when equal): at shift s their ids differ iff this > s */
static inline int differ(int64_t a, int64_t b) {
    uint64_t x = (uint64_t)a ^ (uint64_t)b;
    return x ? 64 - __builtin_clzll(x) : 0;
}

static PyObject *buckets(PyObject *self, PyObject *args) {
    PyObject *keys_obj, *out_obj;
    int shift, bins;
    if (!PyArg_ParseTuple(args, "OiiO:buckets", &keys_obj, &shift, &bins, &out_obj))
        return NULL;
    if (shift < 0 || shift > 63) {
        PyErr_Format(PyExc_ValueError, "buckets() needs a shift in 0..63, got %d", shift);
        return NULL;
    }
    Py_buffer kv, ov;
    if (int64_buffer(keys_obj, &kv, 0, "keys") < 0)
        return NULL;
    if (int64_buffer(out_obj, &ov, 1, "out") < 0) {
        PyBuffer_Release(&kv);
        return NULL;
    }
    const int64_t *k = kv.buf;
    Py_ssize_t n = kv.len / 8, room = (ov.ndim == 2 && ov.shape[0] == 6) ? ov.shape[1] : -1;
    Py_ssize_t need = (bins > 0 && bins < n) ? bins : n;
    const char *error = NULL;
    if (room < need)
        error = "buckets() needs out of shape (6, m) with m at least the bucket count";
    for (Py_ssize_t i = 1; error == NULL && i < n; i++)
        if (k[i] < k[i - 1])
            error = "buckets() needs sorted keys";
    if (error) {
        PyBuffer_Release(&kv);
        PyBuffer_Release(&ov);
        PyErr_SetString(PyExc_ValueError, error);
        return NULL;
    }
    Py_ssize_t m = 0;
    Py_BEGIN_ALLOW_THREADS
    if (bins > 0 && n > bins) { /* occupancy at every shift from one pass: 1 + #{adjacent pairs differing above it} */
        Py_ssize_t above[66] = {0};
        for (Py_ssize_t i = 1; i < n; i++)
            above[differ(k[i - 1], k[i])]++;
        for (int h = 63; h >= 0; h--)
            above[h] += above[h + 1]; /* now: pairs differing at bit h or higher */
        while (shift < 63 && 1 + above[shift + 1] > bins)
            shift++;
    }
    int64_t *ids = ov.buf, *cnt = ids + room, *lo = cnt + room, *hi = lo + room, *nlo = hi + room, *nhi = nlo + room;
    Py_ssize_t start = 0;
    while (start < n) {
        int64_t id = k[start] >> shift;
        Py_ssize_t end = start + 1, first_run = 0, run = 1; /* run: how many equal the current key */
        while (end < n && (k[end] >> shift) == id) {
            if (k[end] == k[end - 1]) {
                run++;
            } else {
                if (first_run == 0)
                    first_run = run;
                run = 1;
            }
            end++;
        }
        ids[m] = id;
        cnt[m] = end - start;
        lo[m] = k[start];
        hi[m] = k[end - 1];
        nlo[m] = first_run ? first_run : end - start; /* a point bucket: nlo = cnt, nhi = 0 */
        nhi[m] = first_run ? run : 0;
        m++;
        start = end;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&kv);
    PyBuffer_Release(&ov);
    return Py_BuildValue("in", shift, m);
}

static PyMethodDef methods[] = {
    {"moments", moments, METH_O, moments_doc},
    {"buckets", buckets, METH_VARARGS, buckets_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "monitor.stats._exact",
    "Compiled numeric batch steps: exact moments (monitor.stats.exact) and buckets of sorted keys "
    "(monitor.stats.grid).", -1, methods,
};

PyMODINIT_FUNC PyInit__exact(void) { return PyModule_Create(&module); }
