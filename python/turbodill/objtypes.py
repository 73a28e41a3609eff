"""The types of ``turbodill.objects``' samples, by dill's names
(``ListType``, ``LockType``...): empty until ``turbodill.load_types()``
fills ``objects`` and reloads this module (dill's ``dill.objtypes``, also
``turbodill.types``)."""

from turbodill import objects as _objects

globals().update({_name: type(_sample) for _name, _sample in _objects.items()})
del _objects
