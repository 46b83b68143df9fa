"""Keeping this node's certificate valid: Swarm's renewal timing, and asking the manager.

Each node renews at a random point between 50 % and 80 % of its certificate's life
(orchestrator.ca.certinfo.renew_at: spread, so a swarm's nodes do not all ask at
once), and at start-up when its certificate has already expired (the daemon does
that before its agent starts). A failed attempt is retried every RETRY seconds, or
sooner for a short certificate. The request carries the current certificate and a
CSR signed by the same key, and no client certificate (an expired one would fail the
handshake): the manager checks both (orchestrator.ops.certificates).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from netagent.contract.errors import VxswarmError
from netagent.contract.messages import RenewRequest, RenewResponse
from orchestrator.ca import tls
from orchestrator.ca.certinfo import renew_at
from orchestrator.node import to_manager

if TYPE_CHECKING:
    from orchestrator.node.daemon import Daemon

log = logging.getLogger(__name__)

#: Seconds between attempts after a failed renewal (at most).
RETRY = 10.0
RENEW_PATH = "/v1/node/certificate"


async def keep_renewed(daemon: Daemon) -> None:
    """Renew `daemon`'s certificate whenever its time comes, until cancelled."""
    while daemon.tls.info is not None:
        info = daemon.tls.info
        delay = (renew_at(info) - datetime.now(UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await daemon.renew_certificate()
        except VxswarmError as err:
            log.warning("certificate renewal failed, will retry: %s", err)
            await asyncio.sleep(min(RETRY, max(info.lifetime.total_seconds() / 20, 0.5)))


async def ask_manager(
    manager_addr: str, bundle_path: Path, cert: bytes, csr: bytes
) -> RenewResponse:
    """POST the renewal to the manager at `manager_addr` ("ip:port"), verified against the
    swarm's roots at `bundle_path`."""
    body = RenewRequest(certificate=cert.decode(), csr=csr.decode()).model_dump_json()
    verify = tls.client_context(bundle_path)
    got = await to_manager.post(manager_addr, RENEW_PATH, body, verify, "certificate renewal")
    return RenewResponse.model_validate_json(got)
