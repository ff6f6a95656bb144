from __future__ import annotations

import pytest

from corral.core.errors import OverloadedError
from corral.inference.admission import Admission


def test_refuses_past_the_bound_with_retry_after() -> None:
    admission = Admission(2)
    admission.enter()
    with admission.slot():
        with pytest.raises(OverloadedError) as err:
            admission.enter()
        assert err.value.status == 503
        assert err.value.headers["retry-after"] == "1"
    assert admission.in_flight == 1
    admission.leave()
    with admission.slot():
        assert admission.in_flight == 1
