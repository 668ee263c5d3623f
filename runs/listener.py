"""The web process's subscription to the run events runs.feed publishes on Redis pub/sub.

django-eventstream's own listener dies silently when its connection drops and never
resubscribes; `ResilientRedisListener` tries to reconnect every fraction of a second, and
meanwhile makes every open stream re-read its run's events from the database every few
seconds. Each event it receives (its frame built once) goes to runs.stream's `Coalescer`,
which fans it out to the streams of that run's channel.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from django.conf import settings

from runs.feed import pubsub_channel
from runs.stream import Coalescer, LiveEvent, wake_all_streams

logger = logging.getLogger(__name__)

# While Redis is unreachable, open streams re-read their run's events this often.
DEGRADED_POLL_SECONDS = 2.0
# While Redis is unreachable, the web process's listener tries to subscribe again this often,
# each try giving up after RECONNECT_TIMEOUT.
RECONNECT_SECONDS = 0.25
RECONNECT_TIMEOUT = 1.0


class ResilientRedisListener:
    """Subscribes the web process to the events pub/sub channel and keeps it subscribed.

    Stands in for django_eventstream.views.RedisListener (same `start()` coroutine), which
    ends for good on the first connection error: after a Redis restart, live delivery would
    stop until the web process restarts. While disconnected it wakes every stream to re-read
    its events from the database, and once (re)subscribed it does so once more to fill the
    gap.
    """

    def __init__(self) -> None:
        self.connected = False
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._coalescer: Coalescer | None = None

    async def start(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._task = asyncio.current_task()  # keep a strong reference to ourselves
        # No redis-py retries: with its default backoff one failed subscribe took ~5 s, so
        # the listener came back (and degraded-mode re-reads ran) seconds late.
        kwargs = {
            **settings.EVENTSTREAM_REDIS,
            "socket_connect_timeout": RECONNECT_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),
        }
        was_down = False
        last_wake = 0.0
        while True:
            client = Redis(**kwargs)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(pubsub_channel())
                self.connected = True
                if was_down:
                    self.reconnects += 1
                    logger.warning("Event listener resubscribed to Redis")
                    was_down = False
                # Fill the gap from the database: a stream registers, replays and waits
                # before this subscription is live (the process's first stream starts this
                # listener), so an event published meanwhile reached no one.
                wake_all_streams()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    _raise_if_cancelled()
                    if message is None:
                        await pubsub.ping()  # a dead connection raises here
                        continue
                    if message.get("type") == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _raise_if_cancelled()
                if not was_down:
                    logger.warning("Event listener lost Redis (%s); reconnecting", exc)
                    last_wake = 0.0
                was_down = True
            finally:
                self.connected = False
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except Exception:
                    pass
            # Degraded mode: streams re-read from the database every DEGRADED_POLL_SECONDS
            # (at once on the loss), while subscribing is tried every RECONNECT_SECONDS.
            now = time.monotonic()
            if now - last_wake >= DEGRADED_POLL_SECONDS:
                wake_all_streams()
                last_wake = now
            _raise_if_cancelled()
            await asyncio.sleep(RECONNECT_SECONDS)

    def _dispatch(self, raw: bytes | str) -> None:
        try:
            data = json.loads(raw)
            # Parsed once here rather than in every stream: streams order by seq and end
            # after a terminal event.
            envelope = json.loads(data["data"])
            event = LiveEvent(
                data["channel"],
                int(data["pub_id"]),
                int(envelope["seq"]),
                data["data"],
                bool(envelope["run"]["terminal"]),
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring a malformed event on %s", pubsub_channel())
            return
        if self._coalescer is None:
            self._coalescer = Coalescer()
        self._coalescer.add(event)


def _raise_if_cancelled() -> None:
    """Stop if this task is being cancelled, even where redis-py let the cancellation go by.

    Cancelled as a read returned, get_message handed back the reply and the CancelledError
    never reached this loop; the next read's asyncio.timeout (Python 3.11) then took the
    still-counted cancellation for its own expiry, every 5 s, and get_message returned None:
    the listener read on forever, and whoever awaited its end hung.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def install_resilient_listener() -> None:
    from django_eventstream import views

    manager = views.get_listener_manager()
    if manager.redis_listener is not None and not isinstance(
        manager.redis_listener, ResilientRedisListener
    ):
        manager.redis_listener = ResilientRedisListener()
