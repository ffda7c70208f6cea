"""The synthetic log generator, and the sample log shipped in the package."""

from __future__ import annotations

import importlib.resources
import json
import shlex

import numpy as np
import pytest
from conftest import concat_rows

import ipsecstats
from ipsecstats._generate import BLOCK_SAMPLES, generate, generate_blocks

COUNTER_COLS = [f.wmi_id - 1 for f in ipsecstats.FIELDS if f.kind == "counter"]
GAUGE_COLS = [f.wmi_id - 1 for f in ipsecstats.FIELDS if f.kind == "gauge"]


def u64(records: np.ndarray) -> np.ndarray:
    return records.view("<u8").reshape(-1, 21)


def falls(records: np.ndarray, stride: int) -> np.ndarray:
    """(rows, 21) bool: where a counter went down."""
    _, resets = ipsecstats.deltas(records, stride=stride, return_resets=True)
    return resets


def test_deterministic_by_seed() -> None:
    a = generate(600, instances=3, restarts=2, seed=11)
    assert a.tobytes() == generate(600, instances=3, restarts=2, seed=11).tobytes()
    assert a.tobytes() != generate(600, instances=3, restarts=2, seed=12).tobytes()
    assert a.dtype == ipsecstats.RECORD_DTYPE and a.shape == (600,)


def test_blocks_concatenate_to_the_whole() -> None:
    n = 2 * BLOCK_SAMPLES + 10  # crosses block boundaries
    blocks = list(generate_blocks(n, seed=3, restarts=3))
    assert [b.shape[0] for b in blocks] == [BLOCK_SAMPLES, BLOCK_SAMPLES, 10]
    whole = concat_rows(blocks)
    assert whole.tobytes() == generate(n, seed=3, restarts=3).tobytes()
    # counters carry on across blocks: no fall at a block boundary except restarts
    assert falls(whole, 1).any(axis=1).sum() == 3


@pytest.mark.parametrize("instances,restarts", [(1, 0), (2, 1), (4, 5)])
def test_counters_only_fall_at_restarts(instances: int, restarts: int) -> None:
    recs = generate(4000 * instances, instances=instances, restarts=restarts, seed=5)
    rows = falls(recs, instances).any(axis=1)
    assert rows.sum() == restarts  # each restart is one row: that instance's counters fall together
    u = u64(recs)
    for r in np.flatnonzero(rows):
        record = r + instances
        fallen = u[record, COUNTER_COLS] < u[r, COUNTER_COLS]
        assert fallen.sum() >= 10  # most counters fell (a few may have been 0 already)
        assert (u[record, COUNTER_COLS] < 1000).all()  # counting again from zero


def test_a_realistic_shape() -> None:
    recs = generate(2 * 1440, instances=2, interval=60.0, seed=1)  # one day of minutes
    names = ipsecstats.RECORD_DTYPE.names
    col = {n: u64(recs)[:, names.index(n)] for n in names}
    d = ipsecstats.deltas(recs, stride=2)
    assert np.median(col["ActiveAcquire"]) == 1  # "typically 1"
    qm, mm = int(d["OakleyQuickMode"].sum()), int(d["OakleyMainMode"].sum())
    assert 2 * mm < qm  # several quick modes per main mode
    assert int(d["KeyAdditions"].sum()) <= qm and int(d["TotalGetSPI"].sum()) >= qm
    conn = col["ConnectionListSize"].astype(float)
    assert conn.max() > 2 * np.median(conn)  # rises under load...
    assert (np.diff(conn[::2]) < 0).sum() > 100  # ...and decays again
    day = conn[::2].reshape(24, 60).mean(axis=1)
    assert day[10:16].mean() > day[0:4].mean()  # busier by day than at night
    assert int(d["SoftAssociations"].sum()) > 0  # a few plaintext fallbacks to find
    auth = d["AuthenticationFailures"].astype(float)
    assert auth[-len(auth) // 4 :].sum() > 2 * auth[: len(auth) // 4].sum()  # rising at the end


def test_wrap_puts_a_counter_past_2_64() -> None:
    recs = generate(3000, seed=2, wrap=True)
    spi = u64(recs)[:, ipsecstats.RECORD_DTYPE.names.index("TotalGetSPI")]
    assert int(spi[0]) > 2**64 - 10**6
    assert int(spi[-1]) < 10**6  # it went round
    d, resets = ipsecstats.deltas(recs, return_resets=True)
    j = ipsecstats.RECORD_DTYPE.names.index("TotalGetSPI")
    row = int(np.flatnonzero(resets[:, j])[0])
    assert int(d["TotalGetSPI"][row]) < 100  # "auto" reads it as a wrap, not as a restart


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"records \(7\) must be a multiple of instances \(2\)"):
        generate(7, instances=2)
    with pytest.raises(ValueError, match="restarts=50 do not fit"):
        generate(20, restarts=50)
    with pytest.raises(ValueError, match="interval must be a finite number"):
        generate(10, interval=float("inf"))
    with pytest.raises(TypeError, match="records must be an integer"):
        generate(10.0)  # type: ignore[arg-type]
    assert generate(0).shape == (0,)


def test_the_shipped_sample_log_matches_its_notes() -> None:
    data = importlib.resources.files("ipsecstats").joinpath("data")
    notes = json.loads(data.joinpath("sample.json").read_text())
    raw = data.joinpath(notes["file"]).read_bytes()
    assert len(raw) < 1_000_000 and len(raw) == notes["records"] * ipsecstats.RECORD_SIZE
    args = shlex.split(notes["command"])
    assert args[:2] == ["ipsecstats", "generate"]
    opts = dict(zip(args[3::2], args[4::2]))
    assert opts == {"--records": str(notes["records"]), "--instances": str(notes["instances"]),
                    "--interval": str(notes["interval"]), "--restarts": str(notes["restarts"]),
                    "--seed": str(notes["seed"])}
    recs = ipsecstats.decode(raw)
    assert falls(recs, notes["instances"]).any(axis=1).sum() == notes["restarts"] == 1
    readme = data.joinpath("README.md").read_text()
    assert notes["command"] in readme
