/* What the compiled cores share to give a Python subclass its own descriptors of their C
 * functions. Python 3.11 specialises a call of a C method or getter only for an instance
 * whose type is exactly the type that the descriptor names; a new descriptor of the same
 * C function, named by the subclass, hits that path. A descriptor that the subclass or a
 * class between it and the base overrides is left alone. Included by _actor.c and
 * _stream.c, which are separate extensions. */
#ifndef PYDIASCA_BIND_H
#define PYDIASCA_BIND_H

#include <Python.h>
#include <structmember.h>

/* cls.name = descriptor of `def` (a PyMethodDef or a PyGetSetDef) owned by cls, if
 * cls still inherits the base's descriptor of it. 0, or -1 with an exception. */
static int bind_one(PyTypeObject *cls, const char *name, PyTypeObject *descr_type,
                    const void *def)
{
    PyObject *key = PyUnicode_InternFromString(name);
    if (key == NULL)
        return -1;
    PyObject *found = _PyType_Lookup(cls, key); /* borrowed */
    int status = 0;
    if (found != NULL && Py_IS_TYPE(found, descr_type) && PyDescr_TYPE(found) != cls) {
        PyObject *descr = NULL;
        if (descr_type == &PyMethodDescr_Type
            && ((PyMethodDescrObject *)found)->d_method == def)
            descr = PyDescr_NewMethod(cls, (PyMethodDef *)def);
        else if (descr_type == &PyGetSetDescr_Type
                 && ((PyGetSetDescrObject *)found)->d_getset == def)
            descr = PyDescr_NewGetSet(cls, (PyGetSetDef *)def);
        else
            goto done; /* another function under the same name: the class's own */
        status = descr == NULL ? -1 : PyObject_SetAttr((PyObject *)cls, key, descr);
        Py_XDECREF(descr);
    }
done:
    Py_DECREF(key);
    return status;
}

/* Every public method of `methods` (names not starting with '_'), then every public
 * getter of `getset` (may be NULL), bound to cls. */
static int bind_all(PyTypeObject *cls, PyMethodDef *methods, PyGetSetDef *getset)
{
    for (PyMethodDef *def = methods; def->ml_name != NULL; def++)
        if (def->ml_name[0] != '_' && bind_one(cls, def->ml_name, &PyMethodDescr_Type, def) < 0)
            return -1;
    for (PyGetSetDef *def = getset; def != NULL && def->name != NULL; def++)
        if (def->name[0] != '_' && bind_one(cls, def->name, &PyGetSetDescr_Type, def) < 0)
            return -1;
    return 0;
}

#endif
