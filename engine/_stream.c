/* The compiled core of engine.random.Random: the same draws, without big-int arithmetic.
 *
 * A stream is a 64-bit key and a draw counter; draw n is SplitMix64's finaliser of
 * key + n * golden, modulo 2**64. Python's version masks its big integers to 64 bits
 * at every step, which unsigned C arithmetic does for free, so both give the same
 * bits. engine/random.py holds the reference implementation, used whenever this
 * module could not be built, and the tests compare the two draw for draw.
 *
 * It also holds the passes over many actors that checkpoints make (engine.snapshot,
 * engine._columns): their engine slots, their attributes column by column, numbers into
 * arrays, containers flattened and rebuilt. Each has a Python equivalent there, used
 * without a compiler, and the tests compare their results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL
#define M1 0xBF58476D1CE4E5B9ULL
#define M2 0x94D049BB133111EBULL

typedef struct {
    PyObject_HEAD
    uint64_t key;
    uint64_t count;
} Stream;

static inline uint64_t next64(Stream *s)
{
    uint64_t z = s->key + (++s->count) * GOLDEN;
    z = (z ^ (z >> 30)) * M1;
    z = (z ^ (z >> 27)) * M2;
    return z ^ (z >> 31);
}

static int Stream_init(Stream *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"key", "count", NULL};
    PyObject *key, *count = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O", names, &key, &count))
        return -1;
    self->key = PyLong_AsUnsignedLongLong(key);
    if (PyErr_Occurred())
        return -1;
    self->count = 0;
    if (count != NULL) {
        self->count = PyLong_AsUnsignedLongLong(count);
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *Stream_random(Stream *self, PyObject *unused)
{
    return PyFloat_FromDouble((double)(next64(self) >> 11) * 0x1.0p-53);
}

static PyObject *Stream_next64(Stream *self, PyObject *unused)
{
    return PyLong_FromUnsignedLongLong(next64(self));
}

/* integers(low, high) for Python ints whose span fits in 63 bits; anything else goes to
 * the Python method _integers, which has the same rules. */
static PyObject *Stream_integers(Stream *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "integers() takes 2 arguments (%zd given)", nargs);
    if (PyLong_CheckExact(args[0]) && PyLong_CheckExact(args[1])) {
        int o1 = 0, o2 = 0;
        long long low = PyLong_AsLongLongAndOverflow(args[0], &o1);
        long long high = PyLong_AsLongLongAndOverflow(args[1], &o2);
        if (!o1 && !o2 && !PyErr_Occurred() && low < high
            && (unsigned long long)high - (unsigned long long)low <= (1ULL << 62)) {
            uint64_t span = (uint64_t)high - (uint64_t)low;
            if (span == 1)
                return PyLong_FromLongLong(low); /* no draw */
            if ((span & (span - 1)) == 0) { /* a power of two: its top bits */
                int bits = 63 - __builtin_clzll(span);
                return PyLong_FromLongLong(low + (long long)(next64(self) >> (64 - bits)));
            }
            uint64_t threshold = (uint64_t)0 - ((uint64_t)0 - span) % span;
            for (;;) {
                uint64_t z = next64(self);
                if (z < threshold)
                    return PyLong_FromLongLong(low + (long long)(z % span));
            }
        }
        PyErr_Clear();
    }
    return PyObject_CallMethod((PyObject *)self, "_integers", "OO", args[0], args[1]);
}

static inline double unit(Stream *self)
{
    return (double)(next64(self) >> 11) * 0x1.0p-53;
}

/* exponential(mean) for a float mean: -mean * log(1 - u), the operations of the Python
 * reference in its order (setup.py turns floating-point contraction off); others go to
 * _exponential. C's log is the one math.log calls. */
static PyObject *Stream_exponential(Stream *self, PyObject *mean)
{
    if (!PyFloat_CheckExact(mean))
        return PyObject_CallMethod((PyObject *)self, "_exponential", "O", mean);
    double m = -PyFloat_AS_DOUBLE(mean);
    return PyFloat_FromDouble(m * log(1.0 - unit(self)));
}

static const double TWO_PI = 2.0 * 3.141592653589793;

/* normal(mu=0.0, sigma=1.0) for float arguments given by position: Box-Muller as the
 * Python reference writes it; anything else goes to _normal. */
static PyObject *Stream_normal(Stream *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    if (kwnames == NULL && nargs <= 2 && (nargs < 1 || PyFloat_CheckExact(args[0]))
        && (nargs < 2 || PyFloat_CheckExact(args[1]))) {
        double mu = nargs >= 1 ? PyFloat_AS_DOUBLE(args[0]) : 0.0;
        double sigma = nargs >= 2 ? PyFloat_AS_DOUBLE(args[1]) : 1.0;
        double u1 = 1.0 - unit(self);
        double u2 = unit(self);
        double scale = sigma * sqrt(-2.0 * log(u1));
        return PyFloat_FromDouble(mu + scale * cos(TWO_PI * u2));
    }
    PyObject *method = PyObject_GetAttrString((PyObject *)self, "_normal");
    if (method == NULL)
        return NULL;
    PyObject *r = PyObject_Vectorcall(method, args, nargs, kwnames);
    Py_DECREF(method);
    return r;
}

static PyObject *Stream_get_key(Stream *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->key);
}

static PyObject *Stream_get_count(Stream *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->count);
}

static int Stream_set_count(Stream *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "the draw count cannot be deleted");
        return -1;
    }
    uint64_t count = PyLong_AsUnsignedLongLong(value);
    if (PyErr_Occurred())
        return -1;
    self->count = count;
    return 0;
}

static PyObject *Stream_reduce(Stream *self, PyObject *unused)
{
    return Py_BuildValue("O(KK)", (PyObject *)Py_TYPE(self), self->key, self->count);
}

static PyMethodDef Stream_methods[] = {
    {"random", (PyCFunction)Stream_random, METH_NOARGS, "A float uniform on [0, 1), 53 bits."},
    {"_next64", (PyCFunction)Stream_next64, METH_NOARGS, "The next 64 random bits."},
    {"integers", (PyCFunction)(void (*)(void))Stream_integers, METH_FASTCALL,
     "An integer uniform on [low, high), without modulo bias."},
    {"exponential", (PyCFunction)Stream_exponential, METH_O,
     "An exponential variate of the given mean (inverse transform)."},
    {"normal", (PyCFunction)(void (*)(void))Stream_normal, METH_FASTCALL | METH_KEYWORDS,
     "A normal variate (Box-Muller, two draws, nothing cached)."},
    {"__reduce__", (PyCFunction)Stream_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Stream_getset[] = {
    {"_key", (getter)Stream_get_key, NULL, "the stream's key", NULL},
    {"_count", (getter)Stream_get_count, (setter)Stream_set_count, "draws so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._stream.Stream",
    .tp_basicsize = sizeof(Stream),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A counter-based 64-bit random stream: (key, count).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stream_init,
    .tp_methods = Stream_methods,
    .tp_getset = Stream_getset,
};

/* --- checkpoints (engine.snapshot): many actors' fields at once ------------------- */

/* The offset of an object slot, from its member descriptor (a class's __slots__ entry). */
static Py_ssize_t slot_offset(PyObject *descr, PyTypeObject **owner, int *type)
{
    if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_SetString(PyExc_TypeError, "expected a slot's member descriptor");
        return -1;
    }
    PyMemberDescrObject *m = (PyMemberDescrObject *)descr;
    *type = m->d_member->type;
    if (*type != T_OBJECT_EX && *type != T_OBJECT && *type != T_PYSSIZET && *type != T_BOOL) {
        PyErr_SetString(PyExc_TypeError, "expected a slot holding an object, a size or a bool");
        return -1;
    }
    if (*owner != NULL && *owner != PyDescr_TYPE(m)) {
        PyErr_SetString(PyExc_TypeError, "the slots are not of one class");
        return -1;
    }
    *owner = PyDescr_TYPE(m);
    return m->d_member->offset;
}

static int writable(PyObject *obj, Py_buffer *view, Py_ssize_t bytes)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->len < bytes) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "an output buffer is too small");
        return -1;
    }
    return 0;
}

/* fields(actors, slots, aai, key, count, ncreated, terminating, dicts): for every actor
 * of the list, its slots (_aai, _random, _ncreated, _terminating: their member
 * descriptors, in that order) into the writable buffers (int64, uint64, uint64, int64,
 * bool); returns the list of the actors' __dict__ when ``dicts`` is true, else None. A
 * slot that is empty or holds another type raises TypeError. One pass: each actor is
 * read from memory once. */
static PyObject *fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])
        || PyTuple_GET_SIZE(args[1]) != 4) {
        PyErr_SetString(PyExc_TypeError, "fields(actors, slots, aai, key, count, ncreated, "
                                         "terminating, dicts)");
        return NULL;
    }
    int want_dicts = PyObject_IsTrue(args[7]);
    if (want_dicts < 0)
        return NULL;
    PyObject *actors = args[0];
    PyTypeObject *owner = NULL;
    Py_ssize_t off[4];
    int type[4];
    for (int j = 0; j < 4; j++)
        if ((off[j] = slot_offset(PyTuple_GET_ITEM(args[1], j), &owner, &type[j])) < 0)
            return NULL;
    /* the AAI and the generator are objects; creations and the termination flag are
     * objects in the Python core, a Py_ssize_t and a char in the compiled one */
    if (type[0] == T_PYSSIZET || type[0] == T_BOOL || type[1] == T_PYSSIZET || type[1] == T_BOOL
        || type[2] == T_BOOL || type[3] == T_PYSSIZET) {
        PyErr_SetString(PyExc_TypeError, "the engine's slots are not of the expected kinds");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(actors);
    Py_buffer views[5];
    Py_ssize_t sizes[5] = {8, 8, 8, 8, 1};
    int got = 0;
    PyObject *result = NULL, *dicts = NULL;
    for (; got < 5; got++)
        if (writable(args[2 + got], &views[got], n * sizes[got]) < 0)
            goto done;
    if (want_dicts && (dicts = PyList_New(n)) == NULL)
        goto done;
    int64_t *aai = views[0].buf, *ncreated = views[3].buf;
    uint64_t *key = views[1].buf, *count = views[2].buf;
    char *terminating = views[4].buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = PyList_GET_ITEM(actors, i);
        if (!PyObject_TypeCheck(a, owner))
            goto wrong;
        char *base = (char *)a;
        PyObject *v0 = *(PyObject **)(base + off[0]), *v1 = *(PyObject **)(base + off[1]);
        if (v0 == NULL || !PyLong_CheckExact(v0) || v1 == NULL
            || !PyObject_TypeCheck(v1, &StreamType))
            goto wrong;
        aai[i] = PyLong_AsLongLong(v0);
        if (type[2] == T_PYSSIZET)
            ncreated[i] = *(Py_ssize_t *)(base + off[2]);
        else {
            PyObject *v2 = *(PyObject **)(base + off[2]);
            if (v2 == NULL || !PyLong_CheckExact(v2))
                goto wrong;
            ncreated[i] = PyLong_AsLongLong(v2);
        }
        if (PyErr_Occurred())
            goto done;
        key[i] = ((Stream *)v1)->key;
        count[i] = ((Stream *)v1)->count;
        if (type[3] == T_BOOL)
            terminating[i] = *(char *)(base + off[3]) != 0;
        else {
            PyObject *v3 = *(PyObject **)(base + off[3]);
            if (v3 == NULL || !PyBool_Check(v3))
                goto wrong;
            terminating[i] = v3 == Py_True;
        }
        if (dicts != NULL) {
            PyObject *d = PyObject_GenericGetDict(a, NULL);
            if (d == NULL)
                goto done;
            PyList_SET_ITEM(dicts, i, d);
        }
    }
    result = dicts != NULL ? Py_NewRef(dicts) : Py_NewRef(Py_None);
    goto done;
wrong:
    PyErr_SetString(PyExc_TypeError, "an actor's engine slots are not as expected");
done:
    for (int j = 0; j < got; j++)
        PyBuffer_Release(&views[j]);
    Py_XDECREF(dicts);
    return result;
}

/* same_item(dicts, name, value): whether every dict of the list maps name to value itself
 * (the same object); KeyError when one lacks name. */
static PyObject *same_item(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "same_item(dicts, name, value)");
        return NULL;
    }
    PyObject *dicts = args[0], *name = args[1], *value = args[2];
    Py_ssize_t n = PyList_GET_SIZE(dicts);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyList_GET_ITEM(dicts, i);
        if (!PyDict_Check(d)) {
            PyErr_SetString(PyExc_TypeError, "same_item() takes a list of dicts");
            return NULL;
        }
        PyObject *v = PyDict_GetItemWithError(d, name); /* a str's hash is cached */
        if (v == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, name);
            return NULL;
        }
        if (v != value)
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* numbers(values, kind, out): the list's values into the writable buffer ``out`` (int64
 * for int, float64 for float, one byte for bool), when every value is exactly of type
 * ``kind`` (and ints fit in 64 bits). Returns 0 when one is not (out is then garbage),
 * 2 when every value has the same bits, else 1. */
static PyObject *numbers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "numbers(values, kind, out)");
        return NULL;
    }
    PyObject *values = args[0];
    PyTypeObject *kind = (PyTypeObject *)args[1];
    int width = kind == &PyBool_Type ? 1 : 8;
    if (kind != &PyLong_Type && kind != &PyFloat_Type && kind != &PyBool_Type) {
        PyErr_SetString(PyExc_TypeError, "numbers() takes int, float or bool");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(values);
    Py_buffer view;
    if (writable(args[2], &view, n * width) < 0)
        return NULL;
    long result = 2;
    uint64_t *words = view.buf;
    char *bytes = view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (Py_TYPE(v) != kind) {
            result = 0;
            break;
        }
        if (kind == &PyBool_Type) {
            bytes[i] = v == Py_True;
            if (bytes[i] != bytes[0])
                result = 1;
            continue;
        }
        if (kind == &PyFloat_Type) {
            double d = PyFloat_AS_DOUBLE(v);
            memcpy(&words[i], &d, 8);
        }
        else {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow) {
                result = 0;
                break;
            }
            words[i] = (uint64_t)x;
        }
        if (words[i] != words[0])
            result = 1;
    }
    PyBuffer_Release(&view);
    return PyLong_FromLong(result);
}

/* flatten(values, kind, refs): for a list of lists, tuples or dicts, exactly of type
 * ``kind``: (lengths, items) or, for dicts, (lengths, keys, items), the items of every
 * container in order, and lengths a bytes of int64. Lists and dicts must have exactly
 * ``refs`` references (their owner's and the list's: nothing else shares them). None
 * when a value is not of that type or is shared. */
static PyObject *flatten(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "flatten(values, kind, refs)");
        return NULL;
    }
    PyObject *values = args[0];
    PyTypeObject *kind = (PyTypeObject *)args[1];
    Py_ssize_t refs = PyLong_AsSsize_t(args[2]);
    if (refs == -1 && PyErr_Occurred())
        return NULL;
    int is_dict = kind == &PyDict_Type, mutable = kind != &PyTuple_Type;
    if (!is_dict && kind != &PyList_Type && kind != &PyTuple_Type) {
        PyErr_SetString(PyExc_TypeError, "flatten() takes list, tuple or dict");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(values), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (Py_TYPE(v) != kind || (mutable && Py_REFCNT(v) != refs))
            Py_RETURN_NONE;
        total += is_dict ? PyDict_GET_SIZE(v) : Py_SIZE(v);
    }
    PyObject *lengths = PyBytes_FromStringAndSize(NULL, n * 8);
    PyObject *keys = is_dict ? PyList_New(total) : NULL;
    PyObject *items = PyList_New(total);
    if (lengths == NULL || items == NULL || (is_dict && keys == NULL))
        goto fail;
    int64_t *len = (int64_t *)PyBytes_AS_STRING(lengths);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (is_dict) {
            Py_ssize_t pos = 0;
            PyObject *k, *x;
            len[i] = PyDict_GET_SIZE(v);
            while (PyDict_Next(v, &pos, &k, &x)) {
                PyList_SET_ITEM(keys, at, Py_NewRef(k));
                PyList_SET_ITEM(items, at++, Py_NewRef(x));
            }
        }
        else {
            Py_ssize_t m = Py_SIZE(v);
            PyObject **src = kind == &PyList_Type ? ((PyListObject *)v)->ob_item
                                                  : ((PyTupleObject *)v)->ob_item;
            len[i] = m;
            for (Py_ssize_t j = 0; j < m; j++)
                PyList_SET_ITEM(items, at++, Py_NewRef(src[j]));
        }
    }
    PyObject *result = is_dict ? PyTuple_Pack(3, lengths, keys, items)
                               : PyTuple_Pack(2, lengths, items);
    Py_DECREF(lengths);
    Py_XDECREF(keys);
    Py_DECREF(items);
    return result;
fail:
    Py_XDECREF(lengths);
    Py_XDECREF(keys);
    Py_XDECREF(items);
    return NULL;
}

/* columns(dicts, names): for a list of dicts that all hold exactly the keys ``names`` (a
 * tuple): (values, same), the list of the dicts' values for each name, and for each name
 * whether every dict holds the first one's object itself. None when a dict is not exactly
 * a dict or has other keys. One pass: each dict is read from memory once. */
static PyObject *columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "columns(dicts, names)");
        return NULL;
    }
    PyObject *dicts = args[0], *names = args[1];
    Py_ssize_t n = PyList_GET_SIZE(dicts), m = PyTuple_GET_SIZE(names);
    PyObject *values = PyList_New(m), *result = NULL;
    char *same = PyMem_Malloc(m + 1);
    if (values == NULL || same == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *column = PyList_New(n);
        if (column == NULL)
            goto done;
        PyList_SET_ITEM(values, j, column);
        same[j] = 1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyList_GET_ITEM(dicts, i);
        if (!PyDict_CheckExact(d) || PyDict_GET_SIZE(d) != m) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            PyObject *v = PyDict_GetItemWithError(d, PyTuple_GET_ITEM(names, j));
            if (v == NULL) {
                if (!PyErr_Occurred())
                    result = Py_NewRef(Py_None);
                goto done;
            }
            PyObject *column = PyList_GET_ITEM(values, j);
            PyList_SET_ITEM(column, i, Py_NewRef(v));
            if (v != PyList_GET_ITEM(column, 0))
                same[j] = 0;
        }
    }
    PyObject *flags = PyTuple_New(m);
    if (flags == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < m; j++)
        PyTuple_SET_ITEM(flags, j, PyBool_FromLong(same[j]));
    result = PyTuple_Pack(2, values, flags);
    Py_DECREF(flags);
done:
    Py_XDECREF(values);
    PyMem_Free(same);
    return result;
}

/* unflatten(kind, lengths, items[, values]): the list of containers of type ``kind`` that
 * flatten took apart: ``lengths`` a buffer of int64, ``items`` (a dict's keys) and
 * ``values`` (a dict's values) lists of their sum's length. */
static PyObject *unflatten(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 3 && nargs != 4) || !PyType_Check(args[0]) || !PyList_Check(args[2])
        || (nargs == 4 && !PyList_Check(args[3]))) {
        PyErr_SetString(PyExc_TypeError, "unflatten(kind, lengths, items[, values])");
        return NULL;
    }
    PyTypeObject *kind = (PyTypeObject *)args[0];
    int is_dict = kind == &PyDict_Type;
    if ((is_dict != (nargs == 4))
        || (!is_dict && kind != &PyList_Type && kind != &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "unflatten() takes list, tuple, or dict and values");
        return NULL;
    }
    PyObject *items = args[2], *values = nargs == 4 ? args[3] : NULL, *out = NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const int64_t *len = view.buf;
    Py_ssize_t n = view.len / 8, total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (len[i] < 0)
            goto bad;
        total += len[i];
    }
    if (total != PyList_GET_SIZE(items) || (values && total != PyList_GET_SIZE(values)))
        goto bad;
    if ((out = PyList_New(n)) == NULL)
        goto done;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t m = (Py_ssize_t)len[i];
        PyObject *c = is_dict ? PyDict_New() : kind == &PyList_Type ? PyList_New(m) : PyTuple_New(m);
        if (c == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, c);
        for (Py_ssize_t j = 0; j < m; j++, at++) {
            PyObject *x = PyList_GET_ITEM(items, at);
            if (is_dict) {
                if (PyDict_SetItem(c, x, PyList_GET_ITEM(values, at)) < 0)
                    goto fail;
            }
            else if (kind == &PyList_Type)
                PyList_SET_ITEM(c, j, Py_NewRef(x));
            else
                PyTuple_SET_ITEM(c, j, Py_NewRef(x));
        }
    }
    goto done;
bad:
    PyErr_SetString(PyExc_ValueError, "unflatten(): lengths and items do not match");
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyBuffer_Release(&view);
    return out;
}

/* records(names, columns): one dict per row, mapping names[j] to columns[j][i]. */
static PyObject *records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyList_Check(args[1])
        || PyTuple_GET_SIZE(args[0]) != PyList_GET_SIZE(args[1])
        || PyTuple_GET_SIZE(args[0]) == 0) {
        PyErr_SetString(PyExc_TypeError, "records(names, columns): as many of each, not none");
        return NULL;
    }
    PyObject *names = args[0], *columns = args[1];
    Py_ssize_t m = PyTuple_GET_SIZE(names), n = -1;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *column = PyList_GET_ITEM(columns, j);
        if (!PyList_Check(column) || (n >= 0 && PyList_GET_SIZE(column) != n)) {
            PyErr_SetString(PyExc_ValueError, "records(): columns of one length expected");
            return NULL;
        }
        n = PyList_GET_SIZE(column);
    }
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyDict_New();
        if (d == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, d);
        for (Py_ssize_t j = 0; j < m; j++)
            if (PyDict_SetItem(d, PyTuple_GET_ITEM(names, j),
                               PyList_GET_ITEM(PyList_GET_ITEM(columns, j), i)) < 0)
                goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"fields", (PyCFunction)(void (*)(void))fields, METH_FASTCALL,
     "Many actors' engine slots into arrays, for checkpoints."},
    {"same_item", (PyCFunction)(void (*)(void))same_item, METH_FASTCALL,
     "Whether every dict maps a name to one same object."},
    {"columns", (PyCFunction)(void (*)(void))columns, METH_FASTCALL,
     "Many dicts' values, name by name, in one pass."},
    {"unflatten", (PyCFunction)(void (*)(void))unflatten, METH_FASTCALL,
     "The containers that flatten took apart."},
    {"records", (PyCFunction)(void (*)(void))records, METH_FASTCALL,
     "One dict per row of columns."},
    {"numbers", (PyCFunction)(void (*)(void))numbers, METH_FASTCALL,
     "A list of Python numbers of one type into an array."},
    {"flatten", (PyCFunction)(void (*)(void))flatten, METH_FASTCALL,
     "The items of a list of unshared containers, and their lengths."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "engine._stream", "Compiled draws of engine.random.Random.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__stream(void)
{
    if (PyType_Ready(&StreamType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&StreamType);
    if (PyModule_AddObject(m, "Stream", (PyObject *)&StreamType) < 0) {
        Py_DECREF(&StreamType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
