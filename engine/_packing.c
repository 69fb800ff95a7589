/* The passes over many actors' attributes that a checkpoint makes (engine._columns):
 * attributes column by column, numbers into arrays, containers of numbers flattened and
 * rebuilt, rows back into dicts. engine/_columns.py holds a Python equivalent of each,
 * used when this module could not be built, and the tests compare their results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_buffers.h"

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
    PyModuleDef_HEAD_INIT, "engine._packing", "Compiled passes of checkpoint columns.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__packing(void) { return PyModule_Create(&module); }
