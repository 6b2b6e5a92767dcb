# The package version; it must equal the C library's FASTMIX_VERSION_MAJOR/
# MINOR/PATCH (checked against fastmix_version() on import) and the version in
# the top-level CMakeLists.txt (checked by tests/python/test_packaging.py).
__version__ = "0.1.0"
