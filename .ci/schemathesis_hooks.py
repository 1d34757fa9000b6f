"""What schemathesis sends for `format: phone`. The document gives a phone
number's shape (E.164); which numbers a country's plan holds is the server's
check, so generated requests draw from numbers that exist."""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "phone",
    st.sampled_from(["+14155552671", "+442079460958", "+12025550143", "+61291234567"]),
)
