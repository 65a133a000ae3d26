"""`BytePool`: grants in archive order, within the pool and a request's share, and a grant
that cannot be made is refused without holding the request up when no buffer can come back."""

from __future__ import annotations

import asyncio

from app.upstream.bytepool import BytePool, PooledImage

MB = 1024 * 1024
# Long enough that a grant which waited it out would fail the test's own bound instead.
FOREVER = 3600.0
BOUND = 10.0


def pool_of(*, max_bytes: int = 8 * MB, request_bytes: int = 3 * MB) -> BytePool:
    return BytePool(
        max_bytes=max_bytes, request_bytes=request_bytes, max_image_bytes=4 * MB, wait=FOREVER
    )


async def test_grants_follow_archive_order_and_stay_within_the_share() -> None:
    pool = pool_of()
    share = pool.share()
    for index in range(4):
        share.expect(index)
    later = asyncio.create_task(share.grant(1, MB))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not later.done()  # image 1 waits for image 0's turn
    first = await share.grant(0, MB)
    second = await asyncio.wait_for(later, BOUND)
    assert isinstance(first, PooledImage)
    assert isinstance(second, PooledImage)
    assert share.granted == pool.lent == 2 * MB
    first.close()
    second.close()
    assert pool.lent == 0


async def test_a_full_share_before_anything_was_written_is_refused_at_once() -> None:
    """Nothing written yet: the share's buffers come back only once the writer starts, which
    may wait for every image (a resume needs all sizes first), so waiting holds it up."""
    pool = pool_of()
    share = pool.share()
    for index in range(5):
        share.expect(index)
    held = [await share.grant(index, MB) for index in range(3)]
    assert all(held)
    assert await asyncio.wait_for(share.grant(3, MB), BOUND) is None
    assert await asyncio.wait_for(share.grant(4, MB), BOUND) is None
    for image in held:
        assert image is not None
        image.close()


async def test_once_written_a_full_share_waits_for_the_next_buffer_back() -> None:
    pool = pool_of()
    share = pool.share()
    for index in range(5):
        share.expect(index)
    held = [await share.grant(index, MB) for index in range(3)]
    assert all(held)
    held.pop(0).close()  # type: ignore[union-attr]  # the writer wrote image 0
    held.append(await share.grant(3, MB))
    waiting = asyncio.create_task(share.grant(4, MB))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # the writer is writing: a buffer comes back soon
    held.pop(0).close()  # type: ignore[union-attr]
    held.append(await asyncio.wait_for(waiting, BOUND))
    assert all(held)
    for image in held:
        image.close()  # type: ignore[union-attr]
    assert pool.lent == 0


async def test_after_a_wait_in_vain_later_images_do_not_wait_again_until_a_buffer_is_back() -> None:
    pool = BytePool(max_bytes=3 * MB, request_bytes=3 * MB, max_image_bytes=4 * MB, wait=0.05)
    share = pool.share()
    for index in range(6):
        share.expect(index)
    held = [await share.grant(index, MB) for index in range(3)]
    assert all(held)
    held.pop(0).close()  # type: ignore[union-attr]  # the writer is writing
    held.append(await share.grant(3, MB))
    assert await share.grant(4, MB) is None  # waited its 0.05 s in vain
    pool.wait = FOREVER  # from here, a grant that waits would wait for ever
    assert await asyncio.wait_for(share.grant(5, MB), BOUND) is None
    for image in held:
        image.close()  # type: ignore[union-attr]


async def test_a_pool_full_of_another_requests_images_is_refused_at_once() -> None:
    """Their buffers come back at their writer's pace; this request's writer may be waiting
    for this very image."""
    pool = pool_of(max_bytes=2 * MB, request_bytes=2 * MB)
    other, mine = pool.share(), pool.share()
    other.expect(0)
    mine.expect(0)
    held = await other.grant(0, 2 * MB)
    assert held is not None
    assert await asyncio.wait_for(mine.grant(0, MB), BOUND) is None
    held.close()
