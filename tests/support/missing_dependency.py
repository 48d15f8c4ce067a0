"""A module that imports a dependency nobody has: what a plug-in with a missing extra looks like."""

import nextstep_no_such_dependency  # type: ignore[import-not-found]  # noqa: F401
