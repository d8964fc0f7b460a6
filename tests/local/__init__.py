"""Local Ground Truth emulator tests (a package, so this folder's conftest is `local.conftest` and
cannot shadow, or be shadowed by, other folders' `conftest` modules)."""
