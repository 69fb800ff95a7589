/* The compiled core of engine.random.Random: the same draws, without big-int arithmetic.
 *
 * A stream is a 64-bit key and a draw counter; draw n is SplitMix64's finaliser of
 * key + n * golden, modulo 2**64. Python's version masks its big integers to 64 bits
 * at every step, which unsigned C arithmetic does for free, so both give the same
 * bits. engine/random.py holds the reference implementation, used whenever this
 * module could not be built, and the tests compare the two draw for draw.
 *
 * It also reads many actors' engine slots at once for checkpoints (engine.snapshot):
 * their generators are streams. The other passes of a checkpoint are in _packing.c.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#include "_bind.h"

#include "_buffers.h"

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
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 1) /* Random(key): every actor, at build */
        key = PyTuple_GET_ITEM(args, 0);
    else if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O", names, &key, &count))
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

/* bind(cls): give a subclass of Stream its own descriptors of the draws. Python 3.11's
 * specialised calls of a C method check that the instance's type is exactly the type
 * that the method's descriptor names: an engine.random.Random calling a descriptor of
 * Stream misses that check at every draw and takes the generic call (about 230 more
 * instructions per draw, callgrind). The same C functions, named by descriptors of cls,
 * hit it. A method that cls or a class between it and Stream overrides is left alone. */
static PyObject *bind(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &StreamType)) {
        PyErr_SetString(PyExc_TypeError, "bind() needs a subclass of Stream");
        return NULL;
    }
    if (bind_all((PyTypeObject *)cls, Stream_methods, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", (PyCFunction)bind, METH_O,
     "bind(cls): the draws as methods of cls itself, for the interpreter's fast calls."},
    {"fields", (PyCFunction)(void (*)(void))fields, METH_FASTCALL,
     "Many actors' engine slots into arrays, for checkpoints."},
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
