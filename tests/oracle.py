"""Helpers shared by the oracle tests of the code every stage shares
(tests/test_bitmap.py, tests/test_common.py, tests/test_unrewritten.py)."""

import inspect


def public_functions(module) -> list[str]:
    """The functions (and classes) a module defines whose names do not start with _."""
    return sorted(name for name, obj in vars(module).items()
                  if (inspect.isfunction(obj) or inspect.isclass(obj))
                  and obj.__module__ == module.__name__ and not name.startswith("_"))


def oracle_tests(module_globals: dict, function: str) -> list[str]:
    """The tests of a test module that check ``function``: named ``test_<function>_...``."""
    return [name for name, obj in module_globals.items()
            if name.startswith(f"test_{function}_") and callable(obj)]
