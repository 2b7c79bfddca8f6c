"""The fleet in partitions: which replica evaluates a device.

A device belongs to one of a fixed number of partitions (ORDERLINE_DEVICE_PARTITIONS), a stable
hash (CRC-32) of its **partition key**: the access node its first sample named, else its own
id. Devices behind one access node therefore share a partition, and the site-level correlation
(many devices of one node losing their line, app/site.py) stays within one replica. The key is
written with the device's first row (`devices.partition_key`) and never changes, so a device
whose later samples name another node, or a node at all, stays where it is; every replica finds
it in the database and agrees.

Each replica keeps here the partitions it evaluates (those whose lease it holds and whose book
it restored, app/ownership.py) and, for routing, the keys of the devices it has met (read from
the database once per device). A replica on its own owns every partition and none of this is
consulted per sample.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

from orderline_device_monitor.adapters.repository import DeviceRepository
from orderline_runtime.errors import Unavailable
from orderline_runtime.unit_of_work import UnitOfWorkFactory

DEFAULT_PARTITIONS = 16


def partition_key(device_id: str, access_node: str) -> str:
    """The key a device is recorded with at its first sample."""
    return access_node or device_id


class Partitions:
    """How many partitions there are, which this replica evaluates, each known device's key."""

    def __init__(self, count: int = 1) -> None:
        if count < 1:
            raise ValueError("at least one partition")
        self.count = count
        self.owned: frozenset[int] = frozenset(range(count))
        # True when this replica evaluates every partition (alone, or no lease): no routing.
        self.all_owned = True
        self._keys: dict[str, str] = {}
        self._of_device: dict[str, int] = {}

    def set_owned(self, owned: Iterable[int]) -> None:
        self.owned = frozenset(owned)
        self.all_owned = len(self.owned) == self.count

    def of_key(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.count

    def owns_key(self, key: str) -> bool:
        return self.all_owned or self.of_key(key) in self.owned

    def learn(self, keys: Mapping[str, str]) -> None:
        """Device keys as the database holds them."""
        for device_id, key in keys.items():
            self._keys[device_id] = key
            self._of_device[device_id] = self.of_key(key)

    def forget(self, device_ids: Iterable[str]) -> None:
        for device_id in device_ids:
            self._keys.pop(device_id, None)
            self._of_device.pop(device_id, None)

    def key_of(self, device_id: str) -> str | None:
        """The device's key when known here."""
        return self._keys.get(device_id)

    def of_device(self, device_id: str) -> int | None:
        """The device's partition when its key is known here."""
        return self._of_device.get(device_id)

    def device_lookup(self) -> dict[str, int]:
        """Device → partition, for a loop over a batch (read only)."""
        return self._of_device

    def owns_device(self, device_id: str) -> bool:
        """By the key known here; a device never recorded is keyed by its id."""
        if self.all_owned:
            return True
        partition = self._of_device.get(device_id)
        if partition is None:
            partition = self.of_key(device_id)
        return partition in self.owned

    async def keys_of(
        self, uow: UnitOfWorkFactory[DeviceRepository], device_ids: Iterable[str]
    ) -> dict[str, str]:
        """The keys of those devices that are recorded: known here, else read (and kept)."""
        found: dict[str, str] = {}
        missing: list[str] = []
        for device_id in device_ids:
            key = self._keys.get(device_id)
            if key is None:
                missing.append(device_id)
            else:
                found[device_id] = key
        if missing:
            async with uow(read_only=True) as tx:
                read = await tx.repos.partition_keys(missing)
            self.learn(read)
            found.update(read)
        return found

    async def partition_of_device(
        self, uow: UnitOfWorkFactory[DeviceRepository], device_id: str
    ) -> int:
        """The device's partition; a device never recorded is keyed by its id."""
        partition = self._of_device.get(device_id)
        if partition is not None:
            return partition
        keys = await self.keys_of(uow, [device_id])
        return self.of_key(keys.get(device_id, device_id))

    async def check_owned(self, uow: UnitOfWorkFactory[DeviceRepository], device_id: str) -> None:
        """UNAVAILABLE when another replica evaluates the device (its partition moved since the
        call was routed here): the caller retries and reaches the owner."""
        if self.all_owned:
            return
        if await self.partition_of_device(uow, device_id) not in self.owned:
            raise partition_moved()


def partition_moved() -> Unavailable:
    return Unavailable(
        "another device-monitor replica evaluates this device now; retry",
        reason="PARTITION_MOVED",
    )
