"""Property test of the batch pipeline: whatever the names, sizes and failure pattern of an
order's images, the archive reads back identically in `zipfile` — every image that could be
fetched, in order, byte for byte, and a report naming every one that could not."""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.archive.fairness import FairLimiter
from app.archive.plan import REPORT_NAME, NothingToDeliver, plan_batch
from app.archive.stream import BatchArchive
from app.upstream.models import Order
from app.upstream.options import DownloadOptions
from tests.unit.fakes import ScriptedClient

image_spec = st.tuples(
    st.one_of(st.none(), st.text(max_size=40)),  # the upstream's image name
    st.binary(max_size=2048),  # its bytes
    st.sampled_from(["ok", "ok", "ok", "fails", "processing"]),  # what happens to it
)


async def build(specs: list[tuple[str | None, bytes, str]], spool_dir: Path) -> bytes:
    order = Order.model_validate(
        {
            "order_id": "o",
            "last_updated_at": "2025-07-05T09:30:00Z",
            "images": [
                {
                    "image_id": f"img-{i}",
                    "image_name": name,
                    "status": "processing" if fate == "processing" else "processed",
                }
                for i, (name, _, fate) in enumerate(specs)
            ],
        }
    )
    payloads = {
        f"img-{i}": (None if fate == "fails" else data) for i, (_, data, fate) in enumerate(specs)
    }
    archive = BatchArchive(
        plan_batch(order, DownloadOptions()),
        client=ScriptedClient(payloads),  # type: ignore[arg-type]
        api_key=None,
        limiter=FairLimiter(3),
        concurrency=2,
        spool_dir=spool_dir,
        spool_memory_bytes=512,
    )
    await archive.start()
    return b"".join([chunk async for chunk in archive])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(image_spec, min_size=1, max_size=12))
def test_any_order_gives_an_archive_that_reads_back_identically(specs: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as spool:
        if all(fate != "ok" for _, _, fate in specs):
            with pytest.raises(NothingToDeliver) as nothing:
                asyncio.run(build(specs, Path(spool)))
            assert len(nothing.value.failures) == len(specs)
            return
        data = asyncio.run(build(specs, Path(spool)))
        assert list(Path(spool).iterdir()) == []  # every spooled image was released
    delivered = [data_ for _, data_, fate in specs if fate == "ok"]
    skipped = len(specs) - len(delivered)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    infos = archive.infolist()
    images = [info for info in infos if info.filename != REPORT_NAME]
    assert [archive.read(info) for info in images] == delivered
    assert len({info.filename.lower() for info in infos}) == len(infos)
    if skipped:
        assert infos[-1].filename == REPORT_NAME
        report = archive.read(REPORT_NAME).decode()
        for i, (_, _, fate) in enumerate(specs):
            assert (f"img-{i} " in report) == (fate != "ok")
    else:
        assert REPORT_NAME not in archive.namelist()
