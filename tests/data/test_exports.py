"""tfastro.data's lazily imported names: each is the one of the module that defines it."""
import importlib

import tfastro.data as data


def test_no_lazy_name_is_shadowed_by_another_module():
    """A name in two data modules' __all__ must not be exported from either (one would
    silently win): e.g. dm2gal's and the prestellar window datasets."""
    owners = {}
    for module in set(data._LAZY.values()):
        for name in getattr(importlib.import_module(module), "__all__", ()):
            owners.setdefault(name, set()).add(module)
    clashes = {name: sorted(mods) for name, mods in owners.items()
               if len(mods) > 1 and name in data._LAZY}
    assert not clashes
    for name, module in data._LAZY.items():
        assert getattr(data, name) is getattr(importlib.import_module(module), name)
