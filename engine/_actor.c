/* The compiled core of engine.Actor: its engine slots and the calls a model makes at
 * every event (send, schedule_in, add_spontaneous_tick, aai, tick, random).
 *
 * engine/actor.py holds the reference (_PyActorCore), which this type follows step
 * for step on the common path: an exact int argument, a live actor. Anything else
 * (NumPy integers, refusals, errors) goes to the Python methods that the reference
 * uses too (_send_slow, _plan_slow, _schedule_in_slow), so both give the same results
 * and the same errors. The tests run models on both and compare them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_bind.h"

/* What an actor's hot calls need of its kernel, without an attribute lookup each: the
 * kernel's _hot. The kernel keeps tick equal to its own; agenda and post are its own. */
typedef struct {
    PyObject_HEAD
    PyObject *tick; /* int */
    long long tick_ll;
    PyObject *agenda;
    PyObject *post;
    /* The last tick planned and its set of the agenda, while the agenda dict keeps its
     * version (no tick added or removed since): a plan for that tick then needs no lookup
     * (and schedule_in no int object). Python 3.11 only: the version tag is deprecated
     * from 3.12 on, and there the cache stays empty. */
    long long c_tick;
    PyObject *c_set;
    uint64_t c_version;
} Hot;

/* The version of the agenda dict, for the plan cache; 0: not cacheable. */
static inline uint64_t agenda_version(PyObject *agenda)
{
#if PY_VERSION_HEX < 0x030C0000
    return PyDict_Check(agenda) ? ((PyDictObject *)agenda)->ma_version_tag : 0;
#else
    return 0;
#endif
}

static int Hot_init(Hot *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"agenda", "post", NULL};
    PyObject *agenda, *post;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO", names, &agenda, &post))
        return -1;
    Py_XSETREF(self->agenda, Py_NewRef(agenda));
    Py_XSETREF(self->post, Py_NewRef(post));
    Py_XSETREF(self->tick, PyLong_FromLong(0));
    self->tick_ll = 0;
    Py_CLEAR(self->c_set);
    self->c_version = 0;
    return self->tick == NULL ? -1 : 0;
}

static int Hot_traverse(Hot *self, visitproc visit, void *arg)
{
    Py_VISIT(self->tick);
    Py_VISIT(self->agenda);
    Py_VISIT(self->post);
    Py_VISIT(self->c_set);
    return 0;
}

static int Hot_clear(Hot *self)
{
    Py_CLEAR(self->tick);
    Py_CLEAR(self->agenda);
    Py_CLEAR(self->post);
    Py_CLEAR(self->c_set);
    return 0;
}

static void Hot_dealloc(Hot *self)
{
    PyObject_GC_UnTrack(self);
    Hot_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Hot_get_tick(Hot *self, void *c)
{
    return Py_NewRef(self->tick ? self->tick : Py_None);
}

static int Hot_set_tick(Hot *self, PyObject *value, void *c)
{
    if (value == NULL || !PyLong_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "the tick is an int");
        return -1;
    }
    long long t = PyLong_AsLongLong(value);
    if (t == -1 && PyErr_Occurred())
        return -1;
    Py_XSETREF(self->tick, Py_NewRef(value));
    self->tick_ll = t;
    return 0;
}

static PyGetSetDef Hot_getset[] = {
    {"tick", (getter)Hot_get_tick, (setter)Hot_set_tick, "the kernel's current tick", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Hot_members[] = {
    {"agenda", T_OBJECT, offsetof(Hot, agenda), READONLY, "the kernel's agenda"},
    {"post", T_OBJECT, offsetof(Hot, post), READONLY, "the kernel's post"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject HotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._actor.Hot",
    .tp_basicsize = sizeof(Hot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What the actors' hot calls need of their kernel: tick, agenda, post.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Hot_init,
    .tp_dealloc = (destructor)Hot_dealloc,
    .tp_traverse = (traverseproc)Hot_traverse,
    .tp_clear = (inquiry)Hot_clear,
    .tp_getset = Hot_getset,
    .tp_members = Hot_members,
};

typedef struct {
    PyObject_HEAD
    PyObject *k;      /* the kernel (engine.actor.KernelSurface) */
    Hot *hot;         /* the kernel's _hot, set with k; NULL: look the kernel up */
    PyObject *aai;    /* int */
    PyObject *random; /* engine.random.Random */
    Py_ssize_t ncreated;
    char terminating;
} Core;

static PyObject *s_hot, *s_post, *s_tick, *s_diasca, *s_agenda, *s_add, *s_send_slow, *s_plan_slow,
    *s_schedule_in_slow;

static int Core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(self->k);
    Py_VISIT(self->hot);
    Py_VISIT(self->aai);
    Py_VISIT(self->random);
    return 0;
}

static int Core_clear(Core *self)
{
    Py_CLEAR(self->k);
    Py_CLEAR(self->hot);
    Py_CLEAR(self->aai);
    Py_CLEAR(self->random);
    return 0;
}

static void Core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    Core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *empty_args;

/* object.__new__, arguments aside (the model's __init__ takes them): unlike the generic
 * allocation, it sets the instance dict up as for any Python class, with the inline
 * values that the interpreter's attribute caches rely on. */
static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    return PyBaseObject_Type.tp_new(type, empty_args, NULL);
}

static PyObject *unset(const char *name)
{
    PyErr_Format(PyExc_AttributeError, "the engine has not set %s yet", name);
    return NULL;
}

static PyObject *Core_get_k(Core *self, void *c)
{
    return self->k ? Py_NewRef(self->k) : unset("_k");
}

/* Setting the kernel also takes its _hot, when it has one of this module's type. */
static int Core_set_k(Core *self, PyObject *k, void *c)
{
    Hot *hot = NULL;
    if (k != NULL) {
        PyObject *found = PyObject_GetAttr(k, s_hot);
        if (found == NULL)
            PyErr_Clear();
        else if (Py_IS_TYPE(found, &HotType))
            hot = (Hot *)found;
        else
            Py_DECREF(found);
        Py_INCREF(k);
    }
    Py_XSETREF(self->k, k);
    Py_XSETREF(self->hot, hot);
    return 0;
}

static PyObject *Core_get_tick(Core *self, void *c)
{
    if (self->hot != NULL)
        return Py_NewRef(self->hot->tick);
    return self->k ? PyObject_GetAttr(self->k, s_tick) : unset("tick");
}

static PyObject *Core_get_diasca(Core *self, void *c)
{
    return self->k ? PyObject_GetAttr(self->k, s_diasca) : unset("diasca");
}

/* agenda[tick].add(aai): plan act_spontaneous at tick t (already checked to be in the
 * future); tick is t as an int, or NULL: made here when needed. */
static PyObject *plan(Core *self, long long t, PyObject *tick)
{
    Hot *hot = self->hot;
    if (hot != NULL && hot->c_set != NULL && hot->c_tick == t
        && hot->c_version == agenda_version(hot->agenda)) {
        if (PySet_Add(hot->c_set, self->aai) < 0) /* the common case: the same tick as before */
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *agenda = hot ? Py_NewRef(hot->agenda) : PyObject_GetAttr(self->k, s_agenda);
    if (agenda == NULL)
        return NULL;
    if (tick == NULL)
        tick = PyLong_FromLongLong(t);
    else
        Py_INCREF(tick);
    if (tick == NULL) {
        Py_DECREF(agenda);
        return NULL;
    }
    PyObject *actors = NULL;
    if (PyDict_Check(agenda)) {
        actors = PyDict_GetItemWithError(agenda, tick); /* borrowed */
        Py_XINCREF(actors);
    }
    if (actors == NULL && !PyErr_Occurred())
        actors = PyObject_GetItem(agenda, tick); /* a new tick: the agenda's __missing__ */
    Py_DECREF(tick);
    if (actors == NULL) {
        Py_DECREF(agenda);
        return NULL;
    }
    int status;
    if (PySet_CheckExact(actors)) {
        status = PySet_Add(actors, self->aai);
        uint64_t version = agenda_version(agenda);
        if (hot != NULL && agenda == hot->agenda && version != 0 && status == 0) {
            Py_XSETREF(hot->c_set, Py_NewRef(actors));
            hot->c_tick = t;
            hot->c_version = version;
        }
    } else {
        PyObject *r = PyObject_CallMethodOneArg(actors, s_add, self->aai);
        status = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_DECREF(actors);
    Py_DECREF(agenda);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The current tick as a C integer; 0 with *ok = 0 when it is not a small int. */
static long long current_tick(Core *self, int *ok)
{
    if (self->hot != NULL) {
        *ok = 1;
        return self->hot->tick_ll;
    }
    *ok = 0;
    PyObject *now = PyObject_GetAttr(self->k, s_tick);
    if (now == NULL) {
        PyErr_Clear();
        return 0;
    }
    long long t = 0;
    if (PyLong_CheckExact(now)) {
        int overflow;
        t = PyLong_AsLongLongAndOverflow(now, &overflow);
        *ok = !overflow && !(t == -1 && PyErr_Occurred());
    }
    PyErr_Clear();
    Py_DECREF(now);
    return t;
}

static PyObject *Core_schedule_in(Core *self, PyObject *n)
{
    if (PyLong_CheckExact(n) && !self->terminating && self->k != NULL && self->aai != NULL) {
        int overflow, ok;
        long long ticks = PyLong_AsLongLongAndOverflow(n, &overflow);
        if (!overflow && ticks >= 1 && ticks < (1LL << 40)) {
            long long now = current_tick(self, &ok);
            if (ok && now >= 0 && now < (1LL << 60))
                return plan(self, now + ticks, NULL);
        }
        PyErr_Clear();
    }
    return PyObject_CallMethodOneArg((PyObject *)self, s_schedule_in_slow, n);
}

static PyObject *Core_add_spontaneous_tick(Core *self, PyObject *tick)
{
    if (PyLong_CheckExact(tick) && !self->terminating && self->k != NULL && self->aai != NULL) {
        int overflow, ok;
        long long t = PyLong_AsLongLongAndOverflow(tick, &overflow);
        if (!overflow && !(t == -1 && PyErr_Occurred())) {
            long long now = current_tick(self, &ok);
            if (ok && t > now)
                return plan(self, t, tick);
        }
        PyErr_Clear();
    }
    return PyObject_CallMethodOneArg((PyObject *)self, s_plan_slow, tick);
}

static PyObject *Core_send(Core *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2)
        return PyErr_Format(PyExc_TypeError,
                            "send() needs a target AAI and a handler name (%zd given)", nargs);
    PyObject *margs = PyTuple_New(nargs - 2);
    if (margs == NULL)
        return NULL;
    for (Py_ssize_t i = 2; i < nargs; i++)
        PyTuple_SET_ITEM(margs, i - 2, Py_NewRef(args[i]));
    PyObject *result;
    if (PyLong_CheckExact(args[0]) && self->k != NULL && self->aai != NULL) {
        PyObject *post = self->hot ? Py_NewRef(self->hot->post) : PyObject_GetAttr(self->k, s_post);
        if (post == NULL) {
            Py_DECREF(margs);
            return NULL;
        }
        PyObject *stack[4] = {self->aai, args[0], args[1], margs};
        PyObject *r = PyObject_Vectorcall(post, stack, 4, NULL);
        Py_DECREF(post);
        if (r == Py_True) { /* queued: the common case */
            Py_DECREF(r);
            Py_DECREF(margs);
            Py_RETURN_NONE;
        }
        if (r == NULL) {
            Py_DECREF(margs);
            return NULL;
        }
        Py_DECREF(r); /* refused: the slow path says why */
    }
    result = PyObject_CallMethodObjArgs((PyObject *)self, s_send_slow, args[0], args[1], margs,
                                        NULL);
    Py_DECREF(margs);
    return result;
}

static PyMethodDef Core_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Core_send, METH_FASTCALL,
     "send(target_aai, handler, *args): call target.handler(self.aai, *args) at the next "
     "diasca."},
    {"schedule_in", (PyCFunction)Core_schedule_in, METH_O,
     "schedule_in(n_ticks): plan act_spontaneous n_ticks (>= 1) ticks from now."},
    {"add_spontaneous_tick", (PyCFunction)Core_add_spontaneous_tick, METH_O,
     "add_spontaneous_tick(tick): plan act_spontaneous at a future tick."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"_k", (getter)Core_get_k, (setter)Core_set_k, "the kernel", NULL},
    {"tick", (getter)Core_get_tick, NULL, "The current tick.", NULL},
    {"diasca", (getter)Core_get_diasca, NULL, "The current diasca of the tick.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* aai and random are read-only members, not getters: the interpreter reads members
 * without a call (its attribute caches know them), which matters at every event. */
static PyMemberDef Core_members[] = {
    {"aai", T_OBJECT_EX, offsetof(Core, aai), READONLY,
     "This actor's abstract identifier: stable whatever the placement."},
    {"random", T_OBJECT_EX, offsetof(Core, random), READONLY,
     "This actor's own generator, derived from (seed, AAI) alone."},
    {"_aai", T_OBJECT_EX, offsetof(Core, aai), 0, "the AAI"},
    {"_random", T_OBJECT_EX, offsetof(Core, random), 0, "the generator"},
    {"_ncreated", T_PYSSIZET, offsetof(Core, ncreated), 0, "creations asked so far"},
    {"_terminating", T_BOOL, offsetof(Core, terminating), 0, "termination declared"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._actor.ActorCore",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The engine's slots of an actor and its hot calls.",
    .tp_new = Core_new,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
    .tp_members = Core_members,
};

/* make(cls, kernel, aai, key, random_type): see engine.actor._py_make. */
static PyObject *actor_make(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5)
        return PyErr_Format(PyExc_TypeError, "make() takes 5 arguments (%zd given)", nargs);
    PyObject *cls = args[0];
    if (!PyType_Check(cls) || ((PyTypeObject *)cls)->tp_new != Core_new
        || !PyType_IsSubtype((PyTypeObject *)cls, &CoreType)) {
        PyErr_SetString(PyExc_TypeError, "make() needs an actor class with the core's __new__");
        return NULL;
    }
    Core *actor = (Core *)Core_new((PyTypeObject *)cls, empty_args, NULL);
    if (actor == NULL)
        return NULL;
    Core_set_k(actor, args[1], NULL);
    Py_XSETREF(actor->aai, Py_NewRef(args[2]));
    actor->random = PyObject_CallOneArg(args[4], args[3]);
    if (actor->random == NULL) {
        Py_DECREF(actor);
        return NULL;
    }
    actor->ncreated = 0;
    actor->terminating = 0;
    return (PyObject *)actor;
}

/* bind(cls): give an actor class its own descriptors of the core's hot calls (send,
 * schedule_in, add_spontaneous_tick). Python 3.11's specialised calls of a C method check
 * that the instance's type is exactly the type that the method's descriptor names: a
 * model's actor calling a descriptor of ActorCore misses that check at every call and
 * takes the generic call (about 200 more instructions per call, callgrind). The same C
 * functions, named by descriptors of the model's class, hit it. engine.Actor binds every
 * subclass as it is defined; a method that the class or one of its bases overrides is
 * left alone. */
static PyObject *bind(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &CoreType)) {
        PyErr_SetString(PyExc_TypeError, "bind() needs a subclass of ActorCore");
        return NULL;
    }
    if (bind_all((PyTypeObject *)cls, Core_methods, Core_getset) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"bind", (PyCFunction)bind, METH_O,
     "bind(cls): the core's hot calls as methods of cls itself, for the interpreter's fast "
     "calls."},
    {"make", (PyCFunction)(void (*)(void))actor_make, METH_FASTCALL,
     "make(cls, kernel, aai, key, random_type): a new actor with the engine's slots set."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "engine._actor", "Compiled core of engine.Actor.", -1, module_methods,
};

static int intern(PyObject **slot, const char *name)
{
    *slot = PyUnicode_InternFromString(name);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__actor(void)
{
    if (intern(&s_hot, "_hot") < 0 || intern(&s_post, "post") < 0 || intern(&s_tick, "tick") < 0
        || intern(&s_diasca, "diasca") < 0 || intern(&s_agenda, "agenda") < 0
        || intern(&s_add, "add") < 0 || intern(&s_send_slow, "_send_slow") < 0
        || intern(&s_plan_slow, "_plan_slow") < 0
        || intern(&s_schedule_in_slow, "_schedule_in_slow") < 0)
        return NULL;
    empty_args = PyTuple_New(0);
    if (empty_args == NULL || PyType_Ready(&CoreType) < 0 || PyType_Ready(&HotType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "ActorCore", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&HotType);
    if (PyModule_AddObject(m, "Hot", (PyObject *)&HotType) < 0) {
        Py_DECREF(&HotType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
