from __future__ import annotations

import pytest

from stockroom.http.errors import PreconditionFailed
from stockroom.http.etag import check_if_match, etag_for


def test_matching_or_absent_if_match_passes() -> None:
    check_if_match(None, 3)
    check_if_match(etag_for(3), 3)
    check_if_match(f"W/{etag_for(3)}", 3)
    check_if_match(f'"1", {etag_for(3)}', 3)
    check_if_match("*", 3)


def test_stale_if_match_is_412() -> None:
    with pytest.raises(PreconditionFailed):
        check_if_match(etag_for(2), 3)
