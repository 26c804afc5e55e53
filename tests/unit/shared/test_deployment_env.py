"""`Deployment`: deployment values from the environment, the Redis password put into the URL."""

import pytest
import redis
from pydantic import ValidationError

from shared.config import Deployment, with_redis_password


def test_password_goes_into_the_url_percent_encoded():
    dep = Deployment.from_env({"DASHRL_REDIS_URL": "redis://redis:6379/0", "DASHRL_REDIS_PASSWORD": "p@ss/w:rd"})
    assert dep.redis_url == "redis://:p%40ss%2Fw%3Ard@redis:6379/0"
    kwargs = redis.Redis.from_url(dep.redis_url).connection_pool.connection_kwargs
    assert (kwargs["password"], kwargs["host"], kwargs["port"], kwargs["db"]) == ("p@ss/w:rd", "redis", 6379, 0)


def test_a_password_in_the_url_wins_and_other_schemes_are_left_alone():
    assert with_redis_password("redis://:given@h:1/0", "other") == "redis://:given@h:1/0"
    assert with_redis_password("rediss://user@h:1/0", "pw") == "rediss://user:pw@h:1/0"
    assert with_redis_password("unix:///tmp/r.sock", "pw") == "unix:///tmp/r.sock"
    assert Deployment.from_env({"DASHRL_REDIS_URL": "redis://h:1/0"}).redis_url == "redis://h:1/0"


def test_every_field_has_its_variable_and_bad_values_are_refused():
    assert set(Deployment.ENV) == set(Deployment.model_fields)
    dep = Deployment.from_env({"DASHRL_WORKER_ID": "w-1", "DASHRL_LEARNER_NODES": "4"})
    assert (dep.worker_id, dep.learner_nodes) == ("w-1", 4)
    with pytest.raises(ValidationError):
        Deployment.from_env({"DASHRL_LEARNER_NODES": "0"})
