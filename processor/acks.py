"""Acknowledge finished deliveries with as few ``basic.ack`` frames as possible.

A worker finishes payments in bunches (the outcomes of one batch commit are published and
settled together), so acking them one frame each costs the worker a frame per payment and
the broker a quorum-queue settle command per payment. ``AckCoalescer`` collects the acks of
a short window (5 ms) and sends one ``basic.ack(multiple=True)`` for the longest run of finished
deliveries that starts at the oldest unsettled one. A finished delivery behind a still-running
one waits for it to finish (and joins its run) for at most ``hold`` (20 ms), then is acked on
its own, so no ack waits longer than that. Nacks (requeue) go out at once, singly. Frames of
successive flushes go out in the order the flushes ran (a multiple ack sent ahead of an older
single ack would make the broker close the channel: "unknown delivery tag").

Why this is safe: ``multiple=True`` settles *every* unsettled delivery up to the tag on the
channel, so the run may only cover deliveries that are all finished. Every delivery is
registered when it arrives (``delivered``); the heap of registered tags tells where the run
of finished ones ends. Tags are per channel: after a reconnect the new channel gets its own
book, and acks for the old channel fail as before (the broker has re-queued those messages).
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field

from aio_pika.abc import AbstractIncomingMessage


@dataclass
class _Book:
    """The unsettled deliveries of one channel."""

    unsettled: list[int] = field(default_factory=list)  # heap of delivery tags
    settled: set[int] = field(default_factory=set)  # settled out of order, still in the heap
    # tag -> (message, waiter, when it finished)
    finished: dict[int, tuple[AbstractIncomingMessage, asyncio.Future[None], float]] = field(
        default_factory=dict
    )
    flushing: bool = False
    # One flush sends at a time, in the order the flushes started: see ``_flush``.
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)


class AckCoalescer:
    def __init__(self, window: float = 0.005, hold: float = 0.02) -> None:
        self._window = window
        self._hold = hold
        self._books: dict[int, tuple[object, _Book]] = {}
        self.frames = 0  # ack frames sent (for tests and metrics)

    def _book(self, message: AbstractIncomingMessage) -> _Book:
        channel = message.channel
        entry = self._books.get(id(channel))
        if entry is None or entry[0] is not channel:
            # A new channel (first use or after a reconnect): forget closed channels' books.
            self._books = {
                key: (owner, book)
                for key, (owner, book) in self._books.items()
                if not getattr(owner, "is_closed", True)
            }
            entry = (channel, _Book())
            self._books[id(channel)] = entry
        return entry[1]

    def delivered(self, message: AbstractIncomingMessage) -> None:
        """Register a delivery as unsettled (call before it is processed)."""
        if message.delivery_tag is not None:
            heapq.heappush(self._book(message).unsettled, message.delivery_tag)

    async def ack(self, message: AbstractIncomingMessage) -> None:
        """Ack ``message``; returns once its ack frame was sent (raises what sending raised)."""
        tag = message.delivery_tag
        if tag is None:
            await message.ack()
            return
        book = self._book(message)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        book.finished[tag] = (message, future, loop.time())
        if not book.flushing:
            book.flushing = True
            loop.call_later(self._window, self._start_flush, book)
        await future

    async def nack(self, message: AbstractIncomingMessage, requeue: bool = True) -> None:
        tag = message.delivery_tag
        if tag is not None:
            self._book(message).settled.add(tag)
        self.frames += 1
        await message.nack(requeue=requeue)

    def _start_flush(self, book: _Book) -> None:
        task = asyncio.ensure_future(self._flush(book))
        task.add_done_callback(_consume_result)

    async def _flush(self, book: _Book) -> None:
        book.flushing = False
        loop = asyncio.get_running_loop()
        now = loop.time()
        run: list[tuple[AbstractIncomingMessage, asyncio.Future[None], float]] = []
        heap = book.unsettled
        while heap:
            tag = heap[0]
            if tag in book.settled:
                heapq.heappop(heap)
                book.settled.discard(tag)
            elif tag in book.finished:
                heapq.heappop(heap)
                run.append(book.finished.pop(tag))
            else:
                break
        # Finished behind a delivery that is still running: wait for it to finish (then they
        # join its run) for at most ``hold``, then ack them one by one.
        alone = [
            (tag, entry) for tag, entry in book.finished.items() if now - entry[2] >= self._hold
        ]
        for tag, _ in alone:
            del book.finished[tag]
            book.settled.add(tag)
        if book.finished and not book.flushing:
            book.flushing = True
            oldest = min(entry[2] for entry in book.finished.values())
            delay = max(self._hold - (now - oldest), self._window)
            loop.call_later(delay, self._start_flush, book)
        # A later flush's run may reach past this flush's single acks (they are marked
        # settled already); were its multiple ack sent first, it would settle them at the
        # broker and the single acks would then name unknown tags, a channel error. The lock
        # (fair, entered in the order the flushes computed) keeps frames in that order.
        async with book.sending:
            if run:
                await self._send(run[-1][0], [entry[1] for entry in run], multiple=True)
            for _, (message, future, _at) in alone:
                await self._send(message, [future], multiple=False)

    async def _send(
        self,
        message: AbstractIncomingMessage,
        futures: list[asyncio.Future[None]],
        multiple: bool,
    ) -> None:
        self.frames += 1
        try:
            await message.ack(multiple=multiple)
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future in futures:
            if not future.done():
                future.set_result(None)


def _consume_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
