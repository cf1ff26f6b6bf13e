"""Slack channels from the settings: where each finished analysis and digest goes."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from kayenta_py.service.settings import Settings
from kayenta_py.service.store.records import Analysis

DEFAULT_CHANNEL = "default"


@dataclass(frozen=True)
class Channel:
    """A Slack channel: where its messages go, which analyses it hears of, and its digest cron."""

    name: str
    webhook_url: SecretStr = field(repr=False)
    digest_cron: str | None = None
    configs: frozenset[str] = frozenset()
    verdicts: frozenset[str] = frozenset()

    def wants(self, analysis: Analysis) -> bool:
        """Return whether a message about this finished analysis goes to this channel."""
        if self.configs and config_label(analysis) not in self.configs:
            return False
        return not self.verdicts or analysis.verdict in self.verdicts


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """Return the configured channels: ``default`` (``slack_webhook_url``) and ``slack_channels``."""
    channels: dict[str, Channel] = {}
    if settings.slack_webhook_url is not None:
        channels[DEFAULT_CHANNEL] = Channel(
            DEFAULT_CHANNEL, settings.slack_webhook_url, settings.slack_digest_cron
        )
    for name, extra in settings.slack_channels.items():
        channels[name] = Channel(
            name, extra.webhook_url, extra.digest_cron, frozenset(extra.configs), frozenset(extra.verdicts)
        )
    return channels


def config_label(analysis: Analysis) -> str:
    """Return the name people know the analysis' config by (stored name, else the body's name)."""
    name = analysis.config_name or (analysis.config_body or {}).get("name")
    return str(name) if name else "(unnamed config)"


