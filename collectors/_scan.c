/* The partial stage's fast path: a version-2 record read straight into a partial's pending columns.
 *
 * collectors/partials.py folds records into statistics in batches. Decoding a record with orjson
 * makes a Python object of every value (a float or a str per cell) only for the partial to copy it
 * into a list, turn numbers into a float64 array and count the strings in a dict: for a 100-instance
 * record, about three quarters of the partial stage. This module reads the record's bytes once:
 *
 *   Scanner.scan(data)  parses one message and, when it is a plain well-formed version-2 record
 *                       (see below) with the canonical event time skewwatch writes, keeps its
 *                       values in scratch buffers and returns its header as a LoggedRecord whose
 *                       columns and outputs are None; None otherwise, and the caller takes the
 *                       general path (orjson and monitor.record's checks), which decides
 *                       everything this path declines.
 *   Pending(inputs, outputs)  a partial's rows not yet folded into its profiles: one float64
 *                       buffer per numeric feature (NaN for null or absent) and one count per
 *                       distinct string per categorical feature (plus the missing count);
 *   Pending.commit(scanner, data)  adds the scanned record, all or nothing: False (and nothing
 *                       changed) when a feature's values are not what the general path would
 *                       take without dropping a row or changing a value;
 *   Pending.take()      hands the buffered rows over (bytes of float64, or (dict, missing)).
 *
 * The path only ever declines: what it accepts, the general path would read to the same values.
 * It declines any string with a backslash escape or a control character, invalid UTF-8 (checked
 * as strictly as Python's decoder: no overlong forms, no surrogates), an integer of more than 18
 * digits, a float that overflows or underflows to a subnormal, a duplicate key it uses, nesting
 * deeper than 64, anything after the object, and, for a feature, values of another type than
 * its kind (a bool, a number in a categorical column, a string in a numeric one) or a category of
 * more than 256 bytes. Floats are converted by CPython's own correctly rounded PyOS_string_to_double.
 * Differential tests: tests/collectors/test_scan.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_NAME_BYTES 256
#define MAX_CATEGORY_BYTES 256
#define MAX_INT_DIGITS 18
#define MAX_FLOAT_CHARS 64

enum { V_NULL = 0, V_NUM = 1, V_STR = 2, V_OTHER = 3 };
enum { F_NULL = 1, F_NUM = 2, F_STR = 4, F_OTHER = 8 };

typedef struct {
    double num;
    Py_ssize_t off;  /* V_STR: offset of the first byte in the data */
    Py_ssize_t len;
    int type;
} Val;

typedef struct {
    Py_ssize_t name_off, name_len;
    int block;  /* 0: columns, 1: outputs */
    int flags;
    Py_ssize_t start, count;  /* into vals */
} Col;

typedef struct {
    PyObject_HEAD
    PyObject *data;  /* the bytes of the record held, or NULL */
    const char *buf;
    Val *vals;
    Py_ssize_t nvals, capvals;
    Col *cols;
    Py_ssize_t ncols, capcols;
    Py_ssize_t max_columns;
    long long max_parts;
    PyObject *record_type;  /* monitor.record.LoggedRecord */
    PyObject *attributes;   /* the empty attributes mapping */
    /* header */
    Py_ssize_t name_off, name_len, version_off, version_len, rid_off, rid_len, time_off, time_len;
    long long rows, part, parts;
    long long blocks[2];  /* columns per block */
} Scanner;

/* -- parsing --------------------------------------------------------------------------------- */

typedef struct {
    const char *p, *end, *base;
    Scanner *sc;
} P;

static inline void ws(P *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')) ps->p++;
}

static int utf8_valid(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && c1 < 0xA0) return 0;  /* overlong */
            if (c == 0xED && c1 > 0x9F) return 0;  /* surrogates */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return 0;
            if (c == 0xF0 && c1 < 0x90) return 0;  /* overlong */
            if (c == 0xF4 && c1 > 0x8F) return 0;  /* beyond U+10FFFF */
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* Bytes a string scan stops at: 1 the closing quote, 2 a backslash or a control character (declined),
 * 3 a non-ASCII byte (then the string is checked as UTF-8). */
static unsigned char STOP[256];

static void init_stop(void) {
    for (int c = 0; c < 0x20; c++) STOP[c] = 2;
    STOP['"'] = 1;
    STOP['\\'] = 2;
    for (int c = 0x80; c < 0x100; c++) STOP[c] = 3;
}

/* A string without escapes (its content: off, len). 0 declines. */
static inline int parse_string(P *ps, Py_ssize_t *off, Py_ssize_t *len) {
    const char *p = ps->p, *end = ps->end;
    if (p >= end || *p != '"') return 0;
    const char *s = ++p;
    int ascii = 1;
    for (;;) {
        while (p < end && !STOP[(unsigned char)*p]) p++;
        if (p >= end) return 0;
        unsigned char k = STOP[(unsigned char)*p];
        if (k == 1) break;
        if (k == 2) return 0;
        ascii = 0;
        p++;
    }
    *off = s - ps->base;
    *len = p - s;
    ps->p = p + 1;
    if (!ascii && !utf8_valid((const unsigned char *)s, *len)) return 0;
    return 1;
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A JSON number. *is_int: an integer literal (then *ival holds it). 0 declines.
 * A float whose significant digits fit in 2**53 and whose decimal exponent is within 22 is one
 * exact product or quotient of two doubles, so one rounding: correctly rounded (Clinger's fast
 * path; x86-64 evaluates doubles in double precision). Any other float goes to CPython's dtoa. */
static inline __attribute__((always_inline)) int parse_number(P *ps, double *out, int *is_int, long long *ival) {
    const char *s = ps->p, *e = ps->end;
    const char *p = s;
    int neg = 0, digits = 0, sig = 0, frac = 0;
    uint64_t mant = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    if (p >= e) return 0;
    if (*p == '0') {
        p++;
        digits = 1;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && is_digit(*p)) {
            if (sig < 19) mant = mant * 10 + (uint64_t)(*p - '0');
            sig++;
            p++;
            digits++;
        }
    } else {
        return 0;
    }
    int integer = 1;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || !is_digit(*p)) return 0;
        while (p < e && is_digit(*p)) {
            if (sig || *p != '0') {
                if (sig < 19) mant = mant * 10 + (uint64_t)(*p - '0');
                sig++;
            }
            frac++;
            p++;
        }
        integer = 0;
    }
    long exp10 = 0;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < e && (*p == '+' || *p == '-')) { eneg = *p == '-'; p++; }
        if (p >= e || !is_digit(*p)) return 0;
        while (p < e && is_digit(*p)) {
            if (exp10 < 1000000000L) exp10 = exp10 * 10 + (*p - '0');  /* saturates beyond any record: a scale that big is never exact */
            p++;
        }
        if (eneg) exp10 = -exp10;
        integer = 0;
    }
    ps->p = p;
    if (integer) {
        if (digits > MAX_INT_DIGITS) return 0;
        long long v = 0;
        for (const char *q = s + neg; q < p; q++) v = v * 10 + (*q - '0');
        if (neg) v = -v;
        *is_int = 1;
        *ival = v;
        *out = (double)v;
        return 1;
    }
    *is_int = 0;
    if (sig == 0) {  /* every digit zero */
        *out = neg ? -0.0 : 0.0;
        return 1;
    }
    long scale = exp10 - frac;  /* value = mant * 10**scale when sig <= 19 */
    if (sig <= 19 && mant <= (UINT64_C(1) << 53) && scale >= -22 && scale <= 22) {
        double d = (double)mant;
        d = scale < 0 ? d / POW10[-scale] : d * POW10[scale];
        *out = neg ? -d : d;
        return 1;
    }
#if LDBL_MANT_DIG == 64
    /* 17-19 significant digits (a double printed in full): one extended-precision operation, exact
     * operands (10**27 = 2**27 * 5**27 and 5**27 < 2**64), so one rounding to 64 bits, then one to 53.
     * Rounding twice differs from rounding once only when the first result is exactly halfway
     * between two doubles (no such midpoint can lie strictly between the exact value and its
     * nearest 64-bit neighbour); those go to dtoa. */
    if (sig <= 19 && scale >= -27 && scale <= 27) {
        long double x = (long double)mant;
        long double p10 = 1.0L;
        for (long k = scale < 0 ? -scale : scale; k > 0; k--) p10 *= 10.0L;  /* exact: 10**k, k <= 27 */
        x = scale < 0 ? x / p10 : x * p10;
        if (x >= (long double)DBL_MIN && x <= (long double)DBL_MAX) {
            uint64_t bits;
            memcpy(&bits, &x, sizeof bits);  /* x87 extended: the 64-bit significand comes first */
            if ((bits & 0x7FF) != 0x400) {
                double d = (double)x;
                *out = neg ? -d : d;
                return 1;
            }
        }
    }
#endif
    Py_ssize_t n = p - s;
    if (n >= MAX_FLOAT_CHARS) return 0;
    char tmp[MAX_FLOAT_CHARS];
    memcpy(tmp, s, (size_t)n);
    tmp[n] = '\0';
    char *endp = NULL;
    double d = PyOS_string_to_double(tmp, &endp, NULL);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (endp != tmp + n || !isfinite(d) || d == 0.0 || fabs(d) < DBL_MIN) return 0;  /* overflow, underflow */
    *out = d;
    return 1;
}

static int lit(P *ps, const char *word, Py_ssize_t n) {
    if (ps->end - ps->p < n || memcmp(ps->p, word, (size_t)n) != 0) return 0;
    ps->p += n;
    return 1;
}

/* Any JSON value, only checked (an unknown key's value, or a nested value in a column). */
static int skip_value(P *ps, int depth) {
    if (depth > MAX_DEPTH || ps->p >= ps->end) return 0;
    char c = *ps->p;
    Py_ssize_t off, len;
    double d;
    int is_int;
    long long iv;
    if (c == '"') return parse_string(ps, &off, &len);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        ps->p++;
        ws(ps);
        if (ps->p < ps->end && *ps->p == close) { ps->p++; return 1; }
        for (;;) {
            if (c == '{') {
                if (!parse_string(ps, &off, &len)) return 0;
                ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return 0;
                ps->p++;
                ws(ps);
            }
            if (!skip_value(ps, depth + 1)) return 0;
            ws(ps);
            if (ps->p >= ps->end) return 0;
            if (*ps->p == ',') { ps->p++; ws(ps); continue; }
            if (*ps->p == close) { ps->p++; return 1; }
            return 0;
        }
    }
    if (c == 't') return lit(ps, "true", 4);
    if (c == 'f') return lit(ps, "false", 5);
    if (c == 'n') return lit(ps, "null", 4);
    return parse_number(ps, &d, &is_int, &iv);
}

static int grow_vals(Scanner *sc) {
    Py_ssize_t cap = sc->capvals ? sc->capvals * 2 : 4096;
    Val *nv = PyMem_Realloc(sc->vals, (size_t)cap * sizeof(Val));
    if (nv == NULL) return 0;
    sc->vals = nv;
    sc->capvals = cap;
    return 1;
}

/* One column's list of values. */
static int parse_column(P *ps, Col *col) {
    Scanner *sc = ps->sc;
    if (ps->p >= ps->end || *ps->p != '[') return 0;
    ps->p++;
    col->start = sc->nvals;
    int flags = 0;
    ws(ps);
    if (ps->p < ps->end && *ps->p == ']') { ps->p++; col->count = 0; col->flags = 0; return 1; }
    for (;;) {
        if (ps->p >= ps->end) return 0;
        if (sc->nvals == sc->capvals && !grow_vals(sc)) return 0;
        Val *v = &sc->vals[sc->nvals];
        char c = *ps->p;
        if (c == '"') {
            if (!parse_string(ps, &v->off, &v->len)) return 0;
            v->type = V_STR;
            flags |= F_STR;
        } else if (c == '-' || is_digit(c)) {
            int is_int;
            long long iv;
            if (!parse_number(ps, &v->num, &is_int, &iv)) return 0;
            v->type = V_NUM;
            flags |= F_NUM;
        } else if (c == 'n') {
            if (!lit(ps, "null", 4)) return 0;
            v->type = V_NULL;
            flags |= F_NULL;
        } else {
            if (!skip_value(ps, 2)) return 0;
            v->type = V_OTHER;
            flags |= F_OTHER;
        }
        sc->nvals++;
        const char *p = ps->p, *end = ps->end;
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
        if (p >= end) return 0;
        if (*p == ',') {
            p++;
            while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
            ps->p = p;
            continue;
        }
        if (*p == ']') { ps->p = p + 1; break; }
        return 0;
    }
    col->flags = flags;
    col->count = sc->nvals - col->start;
    return 1;
}

static int parse_block(P *ps, int block) {
    Scanner *sc = ps->sc;
    if (ps->p >= ps->end || *ps->p != '{') return 0;
    ps->p++;
    ws(ps);
    if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 1; }
    for (;;) {
        Col col;
        if (!parse_string(ps, &col.name_off, &col.name_len)) return 0;
        if (col.name_len == 0 || col.name_len > MAX_NAME_BYTES) return 0;
        col.block = block;
        ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') return 0;
        ps->p++;
        ws(ps);
        if (!parse_column(ps, &col)) return 0;
        if (++sc->blocks[block] > sc->max_columns) return 0;
        if (sc->ncols == sc->capcols) {
            Py_ssize_t cap = sc->capcols ? sc->capcols * 2 : 64;
            Col *nc = PyMem_Realloc(sc->cols, (size_t)cap * sizeof(Col));
            if (nc == NULL) return 0;
            sc->cols = nc;
            sc->capcols = cap;
        }
        sc->cols[sc->ncols++] = col;
        ws(ps);
        if (ps->p >= ps->end) return 0;
        if (*ps->p == ',') { ps->p++; ws(ps); continue; }
        if (*ps->p == '}') { ps->p++; return 1; }
        return 0;
    }
}

static int key_is(const char *base, Py_ssize_t off, Py_ssize_t len, const char *word) {
    size_t n = strlen(word);
    return (size_t)len == n && memcmp(base + off, word, n) == 0;
}

static int parse_int_field(P *ps, long long *out) {
    double d;
    int is_int = 0;
    if (ps->p >= ps->end || !(*ps->p == '-' || is_digit(*ps->p))) return 0;
    if (!parse_number(ps, &d, &is_int, out)) return 0;
    return is_int;
}

enum { H_SCHEMA = 1, H_NAME = 2, H_VERSION = 4, H_RID = 8, H_TIME = 16, H_ROWS = 32, H_PART = 64, H_PARTS = 128,
       H_COLUMNS = 256, H_OUTPUTS = 512, H_ATTRIBUTES = 1024 };

static int parse_record(Scanner *sc, const char *buf, Py_ssize_t n) {
    P ps = {buf, buf + n, buf, sc};
    sc->nvals = sc->ncols = 0;
    sc->blocks[0] = sc->blocks[1] = 0;
    sc->part = 0;
    sc->parts = 1;
    int seen = 0;
    ws(&ps);
    if (ps.p >= ps.end || *ps.p != '{') return 0;
    ps.p++;
    ws(&ps);
    if (ps.p < ps.end && *ps.p == '}') return 0;
    for (;;) {
        Py_ssize_t off, len;
        if (!parse_string(&ps, &off, &len)) return 0;
        ws(&ps);
        if (ps.p >= ps.end || *ps.p != ':') return 0;
        ps.p++;
        ws(&ps);
        int field = 0;
        if (key_is(buf, off, len, "schema_version")) field = H_SCHEMA;
        else if (key_is(buf, off, len, "model_name")) field = H_NAME;
        else if (key_is(buf, off, len, "model_version")) field = H_VERSION;
        else if (key_is(buf, off, len, "request_id")) field = H_RID;
        else if (key_is(buf, off, len, "event_time")) field = H_TIME;
        else if (key_is(buf, off, len, "rows")) field = H_ROWS;
        else if (key_is(buf, off, len, "part")) field = H_PART;
        else if (key_is(buf, off, len, "parts")) field = H_PARTS;
        else if (key_is(buf, off, len, "columns")) field = H_COLUMNS;
        else if (key_is(buf, off, len, "outputs")) field = H_OUTPUTS;
        else if (key_is(buf, off, len, "attributes")) field = H_ATTRIBUTES;
        if (field & seen) return 0;  /* a duplicate: the general path decides which one counts */
        seen |= field;
        long long version;
        switch (field) {
        case H_SCHEMA:
            if (!parse_int_field(&ps, &version) || version != 2) return 0;
            break;
        case H_NAME:
            if (!parse_string(&ps, &sc->name_off, &sc->name_len)) return 0;
            break;
        case H_VERSION:
            if (!parse_string(&ps, &sc->version_off, &sc->version_len)) return 0;
            break;
        case H_RID:
            if (!parse_string(&ps, &sc->rid_off, &sc->rid_len)) return 0;
            break;
        case H_TIME:
            if (!parse_string(&ps, &sc->time_off, &sc->time_len)) return 0;
            break;
        case H_ROWS:
            if (!parse_int_field(&ps, &sc->rows)) return 0;
            break;
        case H_PART:
            if (!parse_int_field(&ps, &sc->part)) return 0;
            break;
        case H_PARTS:
            if (!parse_int_field(&ps, &sc->parts)) return 0;
            break;
        case H_COLUMNS:
            if (!parse_block(&ps, 0)) return 0;
            break;
        case H_OUTPUTS:
            if (!parse_block(&ps, 1)) return 0;
            break;
        case H_ATTRIBUTES:
            if (!lit(&ps, "null", 4)) return 0;  /* attributes given: the general path checks them */
            break;
        default:
            if (!skip_value(&ps, 1)) return 0;
        }
        ws(&ps);
        if (ps.p >= ps.end) return 0;
        if (*ps.p == ',') { ps.p++; ws(&ps); continue; }
        if (*ps.p == '}') { ps.p++; break; }
        return 0;
    }
    ws(&ps);
    if (ps.p != ps.end) return 0;
    int needed = H_SCHEMA | H_NAME | H_VERSION | H_RID | H_TIME | H_ROWS | H_COLUMNS;
    if ((seen & needed) != needed || sc->blocks[0] == 0) return 0;
    for (Py_ssize_t i = 0; i < sc->ncols; i++)
        if (sc->cols[i].count != sc->rows) return 0;
    return 1;
}

/* -- Scanner ----------------------------------------------------------------------------------- */

static void scanner_release(Scanner *sc) {
    Py_CLEAR(sc->data);
    sc->buf = NULL;
}

static void Scanner_dealloc(Scanner *sc) {
    scanner_release(sc);
    Py_CLEAR(sc->record_type);
    Py_CLEAR(sc->attributes);
    PyMem_Free(sc->vals);
    PyMem_Free(sc->cols);
    Py_TYPE(sc)->tp_free((PyObject *)sc);
}

static int Scanner_init(Scanner *sc, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"record_type", "attributes", "max_columns", "max_parts", NULL};
    PyObject *record_type, *attributes;
    Py_ssize_t max_columns = 4096;
    long long max_parts = 10000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|nL", kwlist, &PyType_Type, &record_type, &attributes,
                                     &max_columns, &max_parts))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)record_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "record_type must be a tuple subclass (a named tuple)");
        return -1;
    }
    if (max_columns < 1 || max_parts < 1) {
        PyErr_SetString(PyExc_ValueError, "max_columns and max_parts must be at least 1");
        return -1;
    }
    Py_INCREF(record_type);
    Py_XSETREF(sc->record_type, record_type);
    Py_INCREF(attributes);
    Py_XSETREF(sc->attributes, attributes);
    sc->max_columns = max_columns;
    sc->max_parts = max_parts;
    return 0;
}

static int digits_at(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static long long days_from_civil(long long y, int m, int d) {  /* days since 1970-01-01 (proleptic Gregorian) */
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Epoch ms of the canonical YYYY-MM-DDTHH:MM:SS.mmmZ (what skewwatch writes), years 0001-9999;
 * 0 declines (any other form is the general path's to parse or refuse). */
static int canonical_ms(const char *t, Py_ssize_t n, long long *out) {
    int y, mo, d, h, mi, sec, ms;
    if (n != 24 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != '.' ||
        t[23] != 'Z')
        return 0;
    if (!digits_at(t, 4, &y) || !digits_at(t + 5, 2, &mo) || !digits_at(t + 8, 2, &d) || !digits_at(t + 11, 2, &h) ||
        !digits_at(t + 14, 2, &mi) || !digits_at(t + 17, 2, &sec) || !digits_at(t + 20, 3, &ms))
        return 0;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[mo - 1] + (mo == 2 && leap)) return 0;
    *out = days_from_civil(y, mo, d) * 86400000LL + h * 3600000LL + mi * 60000LL + sec * 1000LL + ms;
    return 1;
}

/* Scan data into sc; 1 held, 0 declined (nothing held), -1 error set. */
static int scan_into(Scanner *sc, PyObject *data) {
    scanner_release(sc);
    if (!PyBytes_CheckExact(data)) return 0;
    const char *buf = PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (!parse_record(sc, buf, n)) {
        if (PyErr_Occurred()) return -1;
        return 0;
    }
    Py_INCREF(data);
    sc->data = data;
    sc->buf = buf;
    return 1;
}

/* The record as monitor.record.LoggedRecord(model_name, model_version, event_time_ms, request_id, rows,
 * columns=None, outputs=None, attributes, part, parts, schema_version=2), with the header checks of
 * monitor.record's fast path (names of 1..256 characters: here bytes, which declines more). */
static PyObject *Scanner_scan(Scanner *sc, PyObject *data) {
    int r = scan_into(sc, data);
    if (r < 0) return NULL;
    if (r == 0) Py_RETURN_NONE;
    const char *b = sc->buf;
    long long ms;
    if (sc->name_len == 0 || sc->name_len > MAX_NAME_BYTES || sc->version_len == 0 ||
        sc->version_len > MAX_NAME_BYTES || sc->rid_len == 0 || sc->rid_len > MAX_NAME_BYTES || sc->rows < 0 ||
        sc->part < 0 || sc->part >= sc->parts || sc->parts > sc->max_parts ||
        !canonical_ms(b + sc->time_off, sc->time_len, &ms)) {
        scanner_release(sc);
        Py_RETURN_NONE;
    }
    PyObject *items = PyTuple_New(11);
    if (items == NULL) return NULL;
    PyObject *v[11] = {
        PyUnicode_DecodeUTF8(b + sc->name_off, sc->name_len, "strict"),
        PyUnicode_DecodeUTF8(b + sc->version_off, sc->version_len, "strict"),
        PyLong_FromLongLong(ms),
        PyUnicode_DecodeUTF8(b + sc->rid_off, sc->rid_len, "strict"),
        PyLong_FromLongLong(sc->rows),
        Py_NewRef(Py_None),
        Py_NewRef(Py_None),
        Py_NewRef(sc->attributes),
        PyLong_FromLongLong(sc->part),
        PyLong_FromLongLong(sc->parts),
        PyLong_FromLong(2),
    };
    int failed = 0;
    for (int i = 0; i < 11; i++) {
        if (v[i] == NULL) failed = 1;
        PyTuple_SET_ITEM(items, i, v[i]);  /* NULL items are fine for Py_DECREF of the tuple */
    }
    if (failed) {
        Py_DECREF(items);
        scanner_release(sc);
        return NULL;
    }
    PyObject *args = PyTuple_Pack(1, items);
    Py_DECREF(items);
    if (args == NULL) return NULL;
    PyObject *rec = PyTuple_Type.tp_new((PyTypeObject *)sc->record_type, args, NULL);  /* tuple.__new__(cls, items) */
    Py_DECREF(args);
    return rec;
}

static PyObject *Scanner_holds(Scanner *sc, PyObject *data) {
    return PyBool_FromLong(sc->data != NULL && sc->data == data);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(data) -> the record (record_type, columns and outputs None) or None: the general path decides"},
    {"holds", (PyCFunction)Scanner_holds, METH_O, "holds(data) -> whether the scratch holds this very object"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reads a plain version-2 record's values without making a Python object of each.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

/* -- counted strings --------------------------------------------------------------------------- */

typedef struct {
    uint64_t hash;
    char *key;  /* NULL: empty slot */
    Py_ssize_t len;
    long long count;
} Entry;

typedef struct {
    Entry *e;
    Py_ssize_t cap, used;
} Map;

static inline uint64_t fnv1a(const char *s, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int map_grow(Map *m) {
    Py_ssize_t cap = m->cap ? m->cap * 2 : 64;
    Entry *e = PyMem_Calloc((size_t)cap, sizeof(Entry));
    if (e == NULL) return 0;
    for (Py_ssize_t i = 0; i < m->cap; i++) {
        if (m->e[i].key == NULL) continue;
        Py_ssize_t j = (Py_ssize_t)(m->e[i].hash & (uint64_t)(cap - 1));
        while (e[j].key != NULL) j = (j + 1) & (cap - 1);
        e[j] = m->e[i];
    }
    PyMem_Free(m->e);
    m->e = e;
    m->cap = cap;
    return 1;
}

static int map_add(Map *m, const char *s, Py_ssize_t n, long long count) {
    if ((m->used + 1) * 2 > m->cap && !map_grow(m)) return 0;
    uint64_t h = fnv1a(s, n);
    Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)(m->cap - 1));
    while (m->e[j].key != NULL) {
        Entry *x = &m->e[j];
        if (x->hash == h && x->len == n && memcmp(x->key, s, (size_t)n) == 0) {
            x->count += count;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    char *key = PyMem_Malloc((size_t)n + 1);
    if (key == NULL) return 0;
    memcpy(key, s, (size_t)n);
    m->e[j].hash = h;
    m->e[j].key = key;
    m->e[j].len = n;
    m->e[j].count = count;
    m->used++;
    return 1;
}

static void map_clear(Map *m) {
    for (Py_ssize_t i = 0; i < m->cap; i++) {
        PyMem_Free(m->e[i].key);
        m->e[i].key = NULL;
    }
    m->used = 0;
}

static void map_free(Map *m) {
    map_clear(m);
    PyMem_Free(m->e);
    m->e = NULL;
    m->cap = 0;
}

/* -- Pending ----------------------------------------------------------------------------------- */

typedef struct {
    char *name;
    Py_ssize_t name_len;
    int block;
    int numeric;
    double *nums;  /* numeric */
    Py_ssize_t n, cap;
    Map counts;  /* categorical */
    long long missing;
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    Py_ssize_t nslots, ninputs;
    long long rows;
} Pending;

static void Pending_dealloc(Pending *pd) {
    for (Py_ssize_t i = 0; i < pd->nslots; i++) {
        PyMem_Free(pd->slots[i].name);
        PyMem_Free(pd->slots[i].nums);
        map_free(&pd->slots[i].counts);
    }
    PyMem_Free(pd->slots);
    Py_TYPE(pd)->tp_free((PyObject *)pd);
}

static int add_slots(Pending *pd, PyObject *layout, int block) {
    PyObject *seq = PySequence_Fast(layout, "a layout is a sequence of (name, is_numeric) pairs");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *name;
        int numeric;
        if (!PyArg_ParseTuple(item, "Up", &name, &numeric)) {
            Py_DECREF(seq);
            return -1;
        }
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(name, &len);
        if (utf8 == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        Slot *s = &pd->slots[pd->nslots];
        memset(s, 0, sizeof(Slot));
        s->name = PyMem_Malloc((size_t)len + 1);
        if (s->name == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(s->name, utf8, (size_t)len + 1);
        s->name_len = len;
        s->block = block;
        s->numeric = numeric;
        pd->nslots++;
    }
    Py_DECREF(seq);
    return 0;
}

static int Pending_init(Pending *pd, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"inputs", "outputs", NULL};
    PyObject *inputs, *outputs;
    if (pd->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Pending is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO", kwlist, &inputs, &outputs)) return -1;
    Py_ssize_t ni = PyObject_Length(inputs), no = PyObject_Length(outputs);
    if (ni < 0 || no < 0) return -1;
    pd->slots = PyMem_Calloc((size_t)(ni + no + 1), sizeof(Slot));
    if (pd->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (add_slots(pd, inputs, 0) < 0) return -1;
    pd->ninputs = pd->nslots;
    if (add_slots(pd, outputs, 1) < 0) return -1;
    return 0;
}

static PyObject *Pending_commit(Pending *pd, PyObject *args) {
    PyObject *scanner, *data;
    if (!PyArg_ParseTuple(args, "O!O", &ScannerType, &scanner, &data)) return NULL;
    Scanner *sc = (Scanner *)scanner;
    if (sc->data != data) {
        int r = scan_into(sc, data);
        if (r < 0) return NULL;
        if (r == 0) Py_RETURN_FALSE;
    }
    long long rows = sc->rows;
    Py_ssize_t found_stack[64];
    Py_ssize_t *found = pd->nslots <= 64 ? found_stack : PyMem_Malloc((size_t)pd->nslots * sizeof(Py_ssize_t));
    if (found == NULL) return PyErr_NoMemory();
    int ok = 1;
    /* check everything before changing anything */
    for (Py_ssize_t i = 0; i < pd->nslots && ok; i++) {
        Slot *s = &pd->slots[i];
        found[i] = -1;
        for (Py_ssize_t c = 0; c < sc->ncols; c++) {
            Col *col = &sc->cols[c];
            if (col->block != s->block || col->name_len != s->name_len ||
                memcmp(sc->buf + col->name_off, s->name, (size_t)s->name_len) != 0)
                continue;
            if (found[i] >= 0) { ok = 0; break; }  /* the same feature twice */
            found[i] = c;
        }
        if (!ok || found[i] < 0) continue;
        Col *col = &sc->cols[found[i]];
        if (s->numeric) {
            if (col->flags & (F_STR | F_OTHER)) ok = 0;
        } else {
            if (col->flags & (F_NUM | F_OTHER)) ok = 0;
            for (Py_ssize_t k = 0; ok && k < col->count; k++) {
                Val *v = &sc->vals[col->start + k];
                if (v->type == V_STR && v->len > MAX_CATEGORY_BYTES) ok = 0;
            }
        }
    }
    for (Py_ssize_t i = 0; i < pd->nslots && ok; i++) {  /* room for the numbers first: all or nothing */
        Slot *s = &pd->slots[i];
        if (!s->numeric || s->n + rows <= s->cap) continue;
        Py_ssize_t cap = s->cap ? s->cap : 1024;
        while (cap < s->n + rows) cap *= 2;
        double *nums = PyMem_Realloc(s->nums, (size_t)cap * sizeof(double));
        if (nums == NULL) {
            if (found != found_stack) PyMem_Free(found);
            return PyErr_NoMemory();
        }
        s->nums = nums;
        s->cap = cap;
    }
    if (!ok) {
        if (found != found_stack) PyMem_Free(found);
        Py_RETURN_FALSE;
    }
    for (Py_ssize_t i = 0; i < pd->nslots; i++) {
        Slot *s = &pd->slots[i];
        if (found[i] < 0) {
            if (s->numeric) {
                for (long long k = 0; k < rows; k++) s->nums[s->n++] = NAN;
            } else {
                s->missing += rows;
            }
            continue;
        }
        Col *col = &sc->cols[found[i]];
        Val *v = &sc->vals[col->start];
        if (s->numeric) {
            for (Py_ssize_t k = 0; k < col->count; k++) s->nums[s->n++] = v[k].type == V_NUM ? v[k].num : NAN;
            continue;
        }
        for (Py_ssize_t k = 0; k < col->count; k++) {
            if (v[k].type != V_STR || v[k].len == 0) {
                s->missing++;
            } else if (!map_add(&s->counts, sc->buf + v[k].off, v[k].len, 1)) {
                /* out of memory mid-record: the pending rows cannot be trusted any more */
                if (found != found_stack) PyMem_Free(found);
                return PyErr_NoMemory();
            }
        }
    }
    pd->rows += rows;
    if (found != found_stack) PyMem_Free(found);
    Py_RETURN_TRUE;
}

static PyObject *slot_take(Slot *s) {
    if (s->numeric) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)s->nums, s->n * (Py_ssize_t)sizeof(double));
        s->n = 0;
        return b;
    }
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    for (Py_ssize_t i = 0; i < s->counts.cap; i++) {
        Entry *e = &s->counts.e[i];
        if (e->key == NULL) continue;
        PyObject *k = PyUnicode_DecodeUTF8(e->key, e->len, "strict");
        PyObject *c = k ? PyLong_FromLongLong(e->count) : NULL;
        if (c == NULL || PyDict_SetItem(d, k, c) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(c);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(c);
    }
    PyObject *out = Py_BuildValue("(NL)", d, s->missing);
    map_clear(&s->counts);
    s->missing = 0;
    return out;
}

static PyObject *Pending_take(Pending *pd, PyObject *Py_UNUSED(ignored)) {
    PyObject *ins = PyList_New(pd->ninputs), *outs = PyList_New(pd->nslots - pd->ninputs);
    if (ins == NULL || outs == NULL) {
        Py_XDECREF(ins);
        Py_XDECREF(outs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < pd->nslots; i++) {
        PyObject *x = slot_take(&pd->slots[i]);
        if (x == NULL) {
            Py_DECREF(ins);
            Py_DECREF(outs);
            return NULL;
        }
        if (i < pd->ninputs) PyList_SET_ITEM(ins, i, x);
        else PyList_SET_ITEM(outs, i - pd->ninputs, x);
    }
    long long rows = pd->rows;
    pd->rows = 0;
    return Py_BuildValue("(LNN)", rows, ins, outs);
}

static PyObject *Pending_get_rows(Pending *pd, void *Py_UNUSED(closure)) { return PyLong_FromLongLong(pd->rows); }

static PyMethodDef Pending_methods[] = {
    {"commit", (PyCFunction)Pending_commit, METH_VARARGS,
     "commit(scanner, data) -> True when the record's rows were added, False (nothing changed) otherwise"},
    {"take", (PyCFunction)Pending_take, METH_NOARGS,
     "take() -> (rows, inputs, outputs): per feature float64 bytes, or (counts, missing); then empty"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Pending_getset[] = {
    {"rows", (getter)Pending_get_rows, NULL, "rows held", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PendingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors._scan.Pending",
    .tp_basicsize = sizeof(Pending),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A partial's scanned rows not yet folded into its profiles.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pending_init,
    .tp_dealloc = (destructor)Pending_dealloc,
    .tp_methods = Pending_methods,
    .tp_getset = Pending_getset,
};

static struct PyModuleDef scanmodule = {
    PyModuleDef_HEAD_INIT, "_scan", "Fast path of the partial stage: plain version-2 records read in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
    init_stop();
    if (PyType_Ready(&ScannerType) < 0 || PyType_Ready(&PendingType) < 0) return NULL;
    PyObject *m = PyModule_Create(&scanmodule);
    if (m == NULL) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&PendingType);
    if (PyModule_AddObject(m, "Pending", (PyObject *)&PendingType) < 0) {
        Py_DECREF(&PendingType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
