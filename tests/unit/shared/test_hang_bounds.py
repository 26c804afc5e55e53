"""The bounds that keep blocking calls from hanging silently (docs/reliability.md, "Hangs")."""

import pydantic
import pytest

from shared.config import SamplerConfig, StreamsConfig
from shared.redis_client import connect


def test_stream_block_stays_below_the_redis_socket_timeout():
    limit = StreamsConfig.model_fields["block_ms"].metadata
    most = min(m.le for m in limit if hasattr(m, "le"))
    client = connect("redis://127.0.0.1:1/0")  # no connection is made until a command
    kwargs = client.connection_pool.connection_kwargs
    assert most / 1000 < kwargs["socket_timeout"] and kwargs["socket_connect_timeout"] <= kwargs["socket_timeout"]
    with pytest.raises(pydantic.ValidationError, match="block_ms"):
        StreamsConfig(block_ms=most + 1)


def test_weight_fetch_has_a_positive_bound():
    assert SamplerConfig().weight_fetch_timeout_s == 300.0
    with pytest.raises(pydantic.ValidationError, match="weight_fetch_timeout_s"):
        SamplerConfig(weight_fetch_timeout_s=0)
