"""Write rates counted in Redis (`REDIS_URL`), shared by every process and instance."""

import logging
from functools import lru_cache

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from api.auth.service import window_of
from api.errors import Unavailable

logger = logging.getLogger("api.auth")

# A write waits at most about a second for Redis (one retry, for a pooled connection that a
# Redis restart closed), then is refused with a 503: never a hang.
REDIS_TIMEOUT_SECONDS = 0.5


@lru_cache
def redis_client(url: str) -> Redis:
    """The process's Redis client (and connection pool) for `url`, with short timeouts."""
    return Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), retries=1),
    )


def count_write_in_redis(client: Redis, *, key_name: str, window_seconds: int) -> tuple[int, int]:
    """Count one write for `key_name` in the current window, shared by every process through
    Redis; returns what count_write returns, or raises Unavailable if Redis does not answer."""
    window, reset = window_of(window_seconds)
    key = f"cdmo:rate:{key_name}:{window}"
    try:
        with client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: counted and expiring
            pipe.incr(key)
            pipe.expireat(key, window + window_seconds)
            count, _ = pipe.execute()
    except RedisError as exc:
        logger.warning("rate limiter unavailable: %s", exc.__class__.__name__)
        raise Unavailable(
            "Writes are refused while the rate limiter (Redis) is unreachable; reads still work."
        ) from None
    return int(count), reset
