"""Dask distributed with turbodill.

Dask pickles task graphs, arguments and results with
``distributed.protocol.pickle``: the stdlib pickler, falling back to
cloudpickle (for what the stdlib refuses, and for anything from
``__main__``). ``install()`` makes turbodill that fallback, in the process
it runs in; loading stays the stdlib's unpickler, which reads turbodill's
payloads. Dask's ``tokenize`` (task keys) then hashes turbodill's
payloads, which are deterministic. The client, the scheduler (it unpickles graphs and pickles tasks
again for the workers) and every worker need it:

- preload it: ``dask scheduler --preload turbodill.dask``,
  ``dask worker --preload turbodill.dask``, or
  ``LocalCluster(preload=["turbodill.dask"])``;
- on the client: ``turbodill.dask.install(client)``, which also installs it
  on the scheduler and on every worker, present and future, by plugins
  (for clusters not started with the preload).
"""

import importlib
import types

import distributed
import distributed.protocol.pickle as _dask_pickle

from . import dumps as _dumps, list_registry_pickle_by_value as _registry


def _tokenize_module():
    """The module whose ``cloudpickle`` dask's ``tokenize`` calls."""
    try:
        return importlib.import_module("dask.tokenize")
    except ImportError:  # dask before 2024.9
        return importlib.import_module("dask.base")


_dask_tokenize = _tokenize_module()
# What distributed.protocol.pickle calls as "cloudpickle": turbodill.
_AS_CLOUDPICKLE = types.SimpleNamespace(dumps=_dumps, list_registry_pickle_by_value=_registry)


def installed():
    """Whether this process's Dask pickles with turbodill."""
    return _dask_pickle.cloudpickle is _dask_tokenize.cloudpickle is _AS_CLOUDPICKLE


def install(client=None):
    """Pickle with turbodill where Dask would use cloudpickle, in this
    process; given a ``distributed.Client``, also on its scheduler and its
    workers (those that join later too)."""
    _dask_pickle.cloudpickle = _dask_tokenize.cloudpickle = _AS_CLOUDPICKLE
    if client is not None:
        client.register_plugin(SchedulerPlugin(), name="turbodill")
        client.register_plugin(WorkerPlugin(), name="turbodill")


def dask_setup(service):
    """Called by Dask for ``--preload turbodill.dask`` (scheduler, worker
    or nanny)."""
    install()


class SchedulerPlugin(distributed.diagnostics.plugin.SchedulerPlugin):
    async def start(self, scheduler):
        install()


class WorkerPlugin(distributed.diagnostics.plugin.WorkerPlugin):
    def setup(self, worker):
        install()
