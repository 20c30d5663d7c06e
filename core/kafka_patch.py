"""Make aiokafka leave a consumer group whose generation is 0 (Tansu numbers the first one 0).

aiokafka sends LeaveGroup only when ``generation > 0`` (Apache Kafka starts at 1). Against
Tansu a cleanly stopped member therefore lingers until its session expires, and a restarted
worker waits for it before it gets partitions. Leaving at generation 0 too is harmless on
Apache Kafka, which never hands out 0. aiokafka is imported only when the patch is applied,
so ``core`` keeps no hard dependency on the stream extra.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_APPLIED = False


def apply_leave_group_patch() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from aiokafka.consumer.group_coordinator import Errors, GroupCoordinator, LeaveGroupRequest

    async def _maybe_leave_group(self: Any) -> None:
        # Upstream: `self.generation > 0`; an unjoined member has generation -1 and no member id.
        if self.generation >= 0 and self.member_id and self._group_instance_id is None:
            request = LeaveGroupRequest(self.group_id, self.member_id)
            try:
                await self._send_req(request)
            except Errors.KafkaError as err:
                log.error("LeaveGroup request failed: %s", err)
            else:
                log.info("LeaveGroup request succeeded")
        self.reset_generation()

    GroupCoordinator._maybe_leave_group = _maybe_leave_group
    _APPLIED = True
