"""Canary configs in the store: versions written once, retried on a race, soft deletes."""


from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kayenta_py.model.errors import StoreError
from kayenta_py.service.store.base import StoreBase
from kayenta_py.service.store.checks import (
    _check_origin,
)
from kayenta_py.service.store.errors import (
    WriteConflictError,
)
from kayenta_py.service.store.records import ConfigVersion
from kayenta_py.service.store.tables import (
    NATIVE,
    ConfigRecord,
    ConfigVersionRecord,
)

log = logging.getLogger(__name__)

CONFIG_WRITE_ATTEMPTS = 8  # tries of a config write that races another one


class ConfigStore(StoreBase):
    """Configs and their versions."""

    def create_config(
        self, name: str, body: Mapping[str, Any], *, origin: str = NATIVE, only_origin: str | None = None
    ) -> ConfigVersion:
        """Store a new config as version 1; a live config of that name is a conflict.

        A deleted config of that name is created again, its history continuing; with
        ``only_origin``, only when it was created through that API (else :class:`OriginError`).
        """
        now = time.time()

        def write() -> ConfigVersion:
            with self.session() as session:
                config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
                if config is not None and config.deleted_ts is None:
                    raise StoreError(f"config {name!r} already exists; PUT a new version instead")
                if config is None:
                    config = ConfigRecord(name=name, origin=origin, created_ts=now)
                    session.add(config)
                    session.flush()
                    version = 1
                else:  # re-created after deletion: its history continues
                    _check_origin(config, only_origin)
                    config.deleted_ts = None
                    config.origin = origin
                    version = self._latest_version(session, config.id) + 1
                record = ConfigVersionRecord(
                    config_id=config.id, version=version, body=dict(body), created_ts=now
                )
                session.add(record)
                session.flush()
                record.config = config
                return ConfigVersion.from_row(record)

        return self._retrying(write, name)

    def update_config(
        self, name: str, body: Mapping[str, Any], *, only_origin: str | None = None
    ) -> ConfigVersion:
        """Store a new version of an existing config (with ``only_origin``: only if that API made it)."""

        def write() -> ConfigVersion:
            with self.session() as session:
                config = self._live_config(session, name)
                _check_origin(config, only_origin)
                record = ConfigVersionRecord(
                    config_id=config.id,
                    version=self._latest_version(session, config.id) + 1,
                    body=dict(body),
                    created_ts=time.time(),
                )
                session.add(record)
                session.flush()
                record.config = config
                return ConfigVersion.from_row(record)

        return self._retrying(write, name)

    @staticmethod
    def _retrying(write: Callable[[], ConfigVersion], name: str) -> ConfigVersion:
        """Run a config write again when a concurrent one took its name or version (unique keys).

        The next attempt reads the other write's result: a create then finds the name taken
        (a conflict), an update takes the next version.
        """
        for _attempt in range(CONFIG_WRITE_ATTEMPTS):
            try:
                return write()
            except IntegrityError:
                time.sleep(0.01 * (1 + _attempt))  # let the other write commit
        raise WriteConflictError(
            f"config {name!r}: {CONFIG_WRITE_ATTEMPTS} concurrent writes in a row; try again"
        )

    def config_origin(self, name: str) -> str | None:
        """Return which API created the config ``name`` (live or deleted), or None if none ever existed."""
        with self.session() as session:
            return session.scalar(select(ConfigRecord.origin).where(ConfigRecord.name == name))

    def config_versions(self, name: str) -> list[int]:
        """Return the stored version numbers of a config, oldest first."""
        with self.session() as session:
            return list(
                session.scalars(
                    select(ConfigVersionRecord.version)
                    .join(ConfigRecord)
                    .where(ConfigRecord.name == name)
                    .order_by(ConfigVersionRecord.version)
                )
            )

    def get_config(self, name: str, version: int | None = None) -> ConfigVersion | None:
        """Return a config's latest (or given) version, or None."""
        with self.session() as session:
            config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
            if config is None or (config.deleted_ts is not None and version is None):
                return None
            query = select(ConfigVersionRecord).where(ConfigVersionRecord.config_id == config.id)
            if version is None:
                query = query.order_by(ConfigVersionRecord.version.desc()).limit(1)
            else:
                query = query.where(ConfigVersionRecord.version == version)
            record = session.scalar(query)
            if record is None:
                return None
            record.config = config
            return ConfigVersion.from_row(record)

    def config_history(self, name: str) -> list[ConfigVersion]:
        """Return every version of a config, oldest first."""
        with self.session() as session:
            config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
            if config is None:
                return []
            records = list(
                session.scalars(
                    select(ConfigVersionRecord)
                    .where(ConfigVersionRecord.config_id == config.id)
                    .order_by(ConfigVersionRecord.version)
                )
            )
            for record in records:
                record.config = config
            return [ConfigVersion.from_row(record) for record in records]

    def list_configs(self) -> list[ConfigVersion]:
        """Return the latest version of every live config, by name."""
        with self.session() as session:
            configs = session.scalars(
                select(ConfigRecord).where(ConfigRecord.deleted_ts.is_(None)).order_by(ConfigRecord.name)
            ).all()
            out = []
            for config in configs:
                record = session.scalar(
                    select(ConfigVersionRecord)
                    .where(ConfigVersionRecord.config_id == config.id)
                    .order_by(ConfigVersionRecord.version.desc())
                    .limit(1)
                )
                if record is not None:
                    record.config = config
                    out.append(ConfigVersion.from_row(record))
            return out

    def delete_config(self, name: str, *, only_origin: str | None = None) -> None:
        """Delete a config; its history is kept for the analyses that used it."""
        with self.session() as session:
            config = self._live_config(session, name)
            _check_origin(config, only_origin)
            config.deleted_ts = time.time()

    @staticmethod
    def _live_config(session: Session, name: str) -> ConfigRecord:
        config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
        if config is None or config.deleted_ts is not None:
            raise StoreError(f"no config {name!r}")
        return config

    @staticmethod
    def _latest_version(session: Session, config_id: int) -> int:
        latest = session.scalar(
            select(func.max(ConfigVersionRecord.version)).where(ConfigVersionRecord.config_id == config_id)
        )
        return int(latest or 0)

