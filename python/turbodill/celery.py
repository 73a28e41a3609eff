"""Celery with turbodill: ``turbodill.celery.setup(app)``, one line in the
module that defines the app (clients and workers both import it).

It makes ``turbodill`` the app's task and result serializer (signed when the
app's ``turbodill_key`` setting or ``key=`` holds a key, or a list of keys
for rotation), and makes the **prefork** pool send decoded task requests to
its child processes with turbodill: Celery's pool re-pickles the request,
with the task's decoded arguments, with the stdlib pickler, which cannot
pickle a lambda and left the task hanging. A prefork worker whose app was
not set up refuses ``turbodill`` messages with an error that says so.
"""

import functools

from celery import signals

from . import dumps as _dumps, kombu as _kombu


@functools.cache
def prefork_task_pool():
    """The prefork pool (``-P prefork``) writing jobs with turbodill, on
    Celery's event-loop pool or, for brokers without one, billiard's pool.
    Made in workers only: ``turbodill.kombu`` takes the pool module's
    presence for a prefork worker."""
    from celery.concurrency import asynpool, prefork

    class TurbodillAsynPool(asynpool.AsynPool):
        def _create_write_handlers(self, hub, **kwds):
            return super()._create_write_handlers(hub, dumps=_dumps, **kwds)

    class TurbodillBlockingPool(prefork.TaskPool.BlockingPool):
        def _setup_queues(self):
            super()._setup_queues()
            send_bytes = self._inqueue._writer.send_bytes
            self._quick_put = lambda job: send_bytes(_dumps(job))

    class TaskPool(prefork.TaskPool):
        Pool = TurbodillAsynPool
        BlockingPool = TurbodillBlockingPool

    return TaskPool


def setup(app, key=None, *, serializer="turbodill"):
    """Use turbodill for ``app``'s tasks and results, and in its prefork
    workers. ``key`` (default: ``app.conf.turbodill_key``) signs payloads
    and makes workers load only signed ones. ``serializer`` may be
    ``"turbodill-msgpack"`` (data only: no functions or classes by value)."""
    if key is None:
        key = app.conf.get("turbodill_key")
    _kombu.configure(key=key)
    app.conf.update(
        task_serializer=serializer,
        result_serializer=serializer,
        accept_content=[serializer],
        result_accept_content=[serializer],
    )

    def use_turbodill_pool(sender, **kwds):
        if sender.app is not app:
            return
        from celery.concurrency import get_implementation

        if get_implementation(sender.pool_cls) is get_implementation("prefork"):
            sender.pool_cls = prefork_task_pool()
        _kombu.prefork_ready = True

    signals.worker_init.connect(use_turbodill_pool, weak=False)
    return app
