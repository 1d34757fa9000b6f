"""What schemathesis sends for `format: phone`. The document gives a phone
number's shape (E.164); which numbers a country's plan holds is the server's
check, so generated requests draw from numbers that exist."""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "phone",
    st.sampled_from(["+14155552671", "+442079460958", "+12025550143", "+61291234567"]),
)


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """The stateful phase follows links it infers from response fields named
    like path parameters; from a null one (an item whose locker was deleted,
    an audit entry about no item) it would put the text `None` in the path,
    which no schema allows. Such a step names nothing: it asks for id 0,
    which no row has, and is answered 404 like any missing one."""
    for name, value in (case.path_parameters or {}).items():
        if value is None or value == "None":
            case.path_parameters[name] = 0
