"""The library's exceptions keep their attributes and message through pickling
(process pools and Dask workers send them back to the caller)."""

import pickle

import pytest

import ipsecstats


@pytest.mark.parametrize(
    "exc",
    [
        ipsecstats.TruncatedRecordError(3, 5, 168, "capture.bin"),
        ipsecstats.PartialRecordWarning(3, 5, 168, "capture.bin"),
        ipsecstats.CounterResetError(7, "AuthenticationFailures", 2**64 - 1, 0, 2),
    ],
    ids=lambda e: type(e).__name__,
)
def test_pickle_round_trip(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert vars(back) == vars(exc)


def test_counter_reset_error_from_deltas_pickles():
    records = ipsecstats.decode((b"\x05" + bytes(167)) + bytes(168))
    with pytest.raises(ipsecstats.CounterResetError) as info:
        ipsecstats.deltas(records, on_decrease="raise", kinds={"ActiveAcquire": "counter"})
    back = pickle.loads(pickle.dumps(info.value))
    assert (back.row, back.field, back.previous, back.current) == (0, "ActiveAcquire", 5, 0)
