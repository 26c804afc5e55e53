"""`dashrl sampler CONFIG [--set k=v ...]`: build the sampler's parts and run its loop.

Exits 0 when the run's state says stop (stop requested or the learner is done) or on
SIGTERM/SIGINT, after handing over what it already generated; 1 on an unexpected error; 3
when a generation call overran `sampler.generate_timeout_s` (`watchdog`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from shared.config import Deployment
from shared.configio import ConfigError, load_config

log = logging.getLogger("dashrl.sampler")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    dep = Deployment.from_env()
    if cfg.run_id is None:
        raise ConfigError("run_id: required by the sampler (set it with --set run_id=...)")
    if not dep.redis_url:
        raise ConfigError("DASHRL_REDIS_URL: required by the sampler")
    signalled = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: signalled.set())
    from services.sampler.parts import build_sampler

    sampler = None
    try:
        sampler = build_sampler(cfg, dep, signalled)
        sampler.run()
        return 0
    except ConfigError:
        raise  # the CLI prints it as one line naming the file, row or key, and exits 2
    except Exception:
        log.exception("sampler: failed")
        return 1
    finally:
        if sampler is not None:
            sampler.close()
