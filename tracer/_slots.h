/* Where a slotted class keeps each of its slots: shared by the compiled
 * decoder (tracer/kernel/_fastwire.c), which fills the slots of the records it
 * builds, and the compiled renderer (tracer/formats/_faststream.c), which
 * reads them.
 *
 * A class with __slots__ (the dataclasses of tracer/model/ made with
 * slots=True) keeps one PyObject* per slot at a fixed offset in each
 * instance, which the slot's member descriptor names. Reading or writing it
 * there skips the attribute lookup. Only a writable object slot inside the
 * instance is accepted; anything else is an error, and the module that asked
 * leaves the work to Python.
 */
#ifndef PROCTRACE_SLOTS_H
#define PROCTRACE_SLOTS_H

#include <Python.h>
#include <structmember.h>

/* The offset of slot `name` of class `type` in *offset; -1 with a ValueError
 * (or the lookup's error) when it is not a writable object slot. */
static int
slot_offset(PyObject *type, const char *name, Py_ssize_t *offset)
{
    if (!PyType_Check(type)) {
        PyErr_Format(PyExc_TypeError, "looking up slot %s: not a class", name);
        return -1;
    }
    PyObject *descr = PyObject_GetAttrString(type, name);
    if (descr == NULL)
        return -1;
    int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type);
    if (ok) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        ok = member->type == T_OBJECT_EX && !(member->flags & READONLY);
        *offset = member->offset;
    }
    Py_DECREF(descr);
    if (!ok || *offset < (Py_ssize_t)sizeof(PyObject) || *offset >= ((PyTypeObject *)type)->tp_basicsize) {
        PyErr_Format(PyExc_ValueError, "%s.%s is not a writable object slot", ((PyTypeObject *)type)->tp_name, name);
        return -1;
    }
    return 0;
}

#endif
