"""From a validated `Config` to what runs: rules, decoder options, pipelines, the kernel filter.

Everything here also runs when a new config is loaded for a reload: a config that fails here is rejected
before anything changes, with a message naming the key.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from packetd.agent.config import Config, ConfigError
from packetd.capture import bpf
from packetd.engine import Rule, RuleError, check_rules, default_rules
from packetd.pipeline.pipelines import PipelineError, Pipelines
from packetd.protocols.options import OptionError, build_options
from packetd.protocols.registry import REGISTRY


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def rules_from(config: Config, resolve: bool = True) -> list[Rule]:
    """The capture rules; none configured (or `rules: []`) means watch's: every protocol on its default
    ports (an agent that decodes nothing, silently, helps no one)."""
    if not config.sniffer.protocols.rules:
        return default_rules()
    rules = []
    for i, r in enumerate(config.sniffer.protocols.rules):
        where = f"sniffer.protocols.rules[{i}]"
        if REGISTRY.get(r.protocol) is None:
            raise ConfigError(
                f"'{where}.protocol': '{r.protocol}' is invalid: unsupported protocol; known: {', '.join(REGISTRY.names())}"
            )
        if not r.ports:
            continue  # the reference skips a rule without ports (§3.1)
        addresses = None
        if r.host:
            try:
                addresses = frozenset({ipaddress.ip_address(r.host).packed})
            except ValueError:
                if not resolve:
                    addresses = frozenset()
                else:
                    try:
                        infos = socket.getaddrinfo(r.host, None, proto=socket.IPPROTO_TCP)
                    except OSError as exc:
                        raise ConfigError(f"'{where}.host': '{r.host}' cannot be resolved: {exc}") from None
                    addresses = frozenset(socket.inet_pton(fam, str(sa[0])) for fam, _t, _p, _c, sa in infos)
        rules.append(
            Rule(protocol=r.protocol, ports=tuple(r.ports), host=r.host or None, addresses=addresses)
        )
    try:
        check_rules(rules)
    except RuleError as exc:
        raise ConfigError(f"'sniffer.protocols.rules': {exc}") from None
    return rules


def default_rules_note(config: Config) -> str | None:
    """The log line saying the default rules are in force (no rules, `rules: []`, or the defaults listed as
    the reference config does), or None when other rules are configured."""
    listed = ", ".join(f"{r.protocol}:{','.join(map(str, r.ports))}" for r in default_rules())
    if not config.sniffer.protocols.rules:
        return f"sniffer.protocols.rules is empty: decoding every protocol on its default ports, as watch does ({listed})"
    if rules_from(config, resolve=False) == default_rules():
        return f"decoding every protocol on its default ports, as watch does ({listed})"
    return None


def options_from(config: Config) -> dict[str, Any]:
    settings: dict[str, dict[str, object]] = {}
    for proto, values in config.controller.decoder.items():
        if not isinstance(values, dict):
            raise ConfigError(f"'controller.decoder.{proto}': expected a map of options")
        out: dict[str, object] = {}
        legacy_capture = values.get("enableBodyCapture")
        for key, raw in values.items():
            if proto == "http" and key in ("enableBodyCapture", "maxBodySize"):
                continue  # reference §2.2 keys, mapped below
            out[_snake(key)] = raw
        if proto == "http" and legacy_capture:
            out.setdefault("capture_body", values.get("maxBodySize", 102400))
        settings[proto] = out
    try:
        return build_options(settings)
    except OptionError as exc:
        raise ConfigError(f"'controller.decoder': {exc}") from None


def pipelines_from(config: Config) -> Pipelines:
    try:
        return Pipelines(
            [(p.name, p.config) for p in config.processor],
            [(p.name, p.processors) for p in config.pipeline],
            traces_enabled=config.exporter.traces.enabled,
            roundtrips_enabled=config.exporter.roundtrips.enabled,
            vm_histogram=config.metrics_storage.vm_histogram,
            label_bytes=config.metrics_storage.max_label_bytes,
            naming=config.metrics_storage.naming,
            protocols=REGISTRY.names(),
            otlp_metrics_bounds=(
                config.exporter.otlp_metrics.buckets if config.exporter.otlp_metrics.enabled else None
            ),
            otlp_logs=config.exporter.otlp_logs.enabled,
        )
    except PipelineError as exc:
        raise ConfigError(f"'processor'/'pipeline': {exc}") from None
    except re.error as exc:  # a processor's regex (pathTemplates): rejected here, not in a running loop
        pattern = exc.pattern if isinstance(exc.pattern, str) else repr(exc.pattern)
        raise ConfigError(f"'processor': regex '{pattern}' is invalid: {exc.msg}") from None


def detect_from(config: Config) -> bool:
    """Detection by content: `sniffer.protocols.detect`, or no rules configured (watch's default)."""
    protocols = config.sniffer.protocols
    return protocols.detect or "rules" not in protocols.model_fields_set or not protocols.rules


def bpf_from(rules: list[Rule], detect: bool = False) -> str:
    if detect:
        return bpf.ALL_TCP_UDP
    return bpf.filter_expression((REGISTRY[r.protocol].transports, r.ports, r.host) for r in rules)


def check_user(user: str) -> None:
    """`sniffer.user` names an account this process can become (workers switch to it after opening)."""
    if not user:
        return
    import os
    import pwd

    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ConfigError(f"'sniffer.user': '{user}' is invalid: no such user") from None
    if os.geteuid() not in (0, uid):
        raise ConfigError(f"'sniffer.user': '{user}' is invalid: only root can change user")


def validate(config: Config) -> None:
    """Everything that can be wrong beyond the schema; raises ConfigError."""
    rules_from(config)
    options_from(config)
    pipelines_from(config)
    check_user(config.sniffer.user)
    if config.kubernetes.enabled:
        import importlib.util

        if importlib.util.find_spec("lightkube") is None:
            raise ConfigError(
                "'kubernetes.enabled': needs the lightkube package: pip install 'packetd[kubernetes]'"
            )
    if config.sniffer.file:
        try:
            with open(config.sniffer.file, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"'sniffer.file': '{config.sniffer.file}' cannot be read: {exc.strerror}"
            ) from None
    elif config.sniffer.ifaces not in ("", "any"):
        try:
            re.compile(config.sniffer.ifaces)
        except re.error as exc:
            raise ConfigError(
                f"'sniffer.ifaces': '{config.sniffer.ifaces}' is not a valid regex: {exc}"
            ) from None
