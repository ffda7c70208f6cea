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


def test_shifted_counts_the_row_further_and_keeps_the_rest():
    exc = ipsecstats.CounterResetError(7, "AuthenticationFailures", 2**64 - 1, 0, 2)
    moved = exc.shifted(1000)
    assert type(moved) is ipsecstats.CounterResetError
    assert (moved.row, moved.field, moved.previous, moved.current, moved.stride) == (
        1007, "AuthenticationFailures", 2**64 - 1, 0, 2)
    assert str(moved) == str(ipsecstats.CounterResetError(1007, "AuthenticationFailures", 2**64 - 1, 0, 2))
    assert exc.row == 7  # the original is left as it was


def test_notes_survive_pickling():
    exc = ipsecstats.CounterResetError(7, "AuthenticationFailures", 5, 0)
    exc.add_note("capture.bin: at record 8")
    back = pickle.loads(pickle.dumps(exc))
    assert back.__notes__ == ["capture.bin: at record 8"]


def test_shifted_keeps_notes():
    exc = ipsecstats.CounterResetError(3, "KeyUpdates", 9, 2, 1)
    exc.add_note("in capture.bin")
    moved = exc.shifted(100)
    assert moved.row == 103 and moved.__notes__ == ["in capture.bin"]
    assert (moved.field, moved.previous, moved.current) == ("KeyUpdates", 9, 2)
