"""Importable classes whose instances delegate attribute access, as
Elasticsearch's namespaced clients do (test_fidelity_classes)."""


class Client:
    def __init__(self):
        self.calls = 0

    def ping(self):
        self.calls += 1
        return "pong"


class Namespaced:
    """`__getattr__` reads `self.client`: on a blank instance it recurses."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)


class Guarded:
    """A `__getattr__` that a blank instance answers with AttributeError:
    the stdlib's bytes load fine, so turbodill writes them too."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        if name.startswith("__") or name == "client":
            raise AttributeError(name)
        return getattr(self.client, name)
