"""tinymim.configio: YAML + CLI merging, and every kind of bad value rejected before work starts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from tinymim.configio import add_config_arguments, build_config, config_from_args, field_help, require, save_config
from tinymim.errors import ConfigError


@dataclass(frozen=True)
class Demo:
    data: str = "builtin:fashion-mnist"
    lr: float = field(default=5e-4, metadata=field_help("base learning rate"))
    batch_size: int = 64
    amp: bool = False
    formats: tuple[str, ...] = ("onnx", "onnx-int8")
    init: str | None = None
    mode: Literal["fast", "full"] = "fast"
    peak: float | Literal["auto"] | None = None

    def validate(self) -> None:
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
        require(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")


def parse(argv, tmp_path=None):
    p = argparse.ArgumentParser()
    add_config_arguments(p, Demo)
    return config_from_args(Demo, p.parse_args(argv))


def test_defaults_and_cli_types():
    cfg = parse(["--lr", "0.01", "--batch-size", "8", "--amp", "--formats", "onnx", "--mode", "full"])
    assert cfg == Demo(lr=0.01, batch_size=8, amp=True, formats=("onnx",), mode="full")


def test_a_union_takes_each_member_and_names_them_all():
    assert parse(["--peak", "auto"]).peak == "auto"
    assert parse(["--peak", "2e-3"]).peak == 2e-3
    assert parse([]).peak is None
    assert build_config(Demo, {"peak": 0.5}).peak == 0.5
    with pytest.raises(ConfigError, match="'peak' must be 'auto' or a number, got 'fast'"):
        build_config(Demo, {"peak": "fast"})


def test_yaml_then_cli_wins(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lr: 0.1\nbatch-size: 4\ninit: null\n")
    cfg = parse(["--config", str(y), "--batch-size", "16"])
    assert (cfg.lr, cfg.batch_size, cfg.init) == (0.1, 16, None)


def test_saved_config_round_trips(tmp_path):
    cfg = Demo(lr=0.2, formats=("a", "b"), init="x")
    save_config(cfg, tmp_path / "c.yaml")
    assert parse(["--config", str(tmp_path / "c.yaml")]) == cfg


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"learning_rate": 1}, "unknown config key 'learning_rate'"),
        ({"lrr": 1}, "Did you mean: lr"),
        ({"lr": "fast"}, "'lr' must be a number"),
        ({"batch_size": 2.5}, "'batch_size' must be an integer"),
        ({"amp": "maybe"}, "'amp' must be true or false"),
        ({"mode": "slow"}, "allowed values: fast, full"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"data": None}, "'data' must not be empty"),
    ],
)
def test_bad_values_are_named(values, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        build_config(Demo, values)


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse(["--config", str(tmp_path / "missing.yaml")])
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        parse(["--config", str(tmp_path / "list.yaml")])
    (tmp_path / "bad.yaml").write_text("lr: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse(["--config", str(tmp_path / "bad.yaml")])


# ------------------------------------------------------------------ pydantic-settings models (the service's)


def _settings_class():
    from pydantic import Field
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class DemoSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DEMO_", frozen=True, extra="forbid")

        name: str = Field(description="what to serve")
        port: int = Field(8000, ge=0, le=65535, description="TCP port")
        verbose: bool = Field(False, description="log more")

    return DemoSettings


def test_settings_get_the_same_flags_yaml_and_precedence(tmp_path, monkeypatch):
    cls = _settings_class()
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls, positional=("name",))
    assert "(env DEMO_PORT) [default: 8000]" in parser.format_help()
    monkeypatch.setenv("DEMO_PORT", "9000")
    monkeypatch.setenv("DEMO_VERBOSE", "true")
    assert config_from_args(cls, parser.parse_args(["m"])).port == 9000  # env over default
    cfg = tmp_path / "s.yaml"
    cfg.write_text("port: 9100\n")
    s = config_from_args(cls, parser.parse_args(["m", "--config", str(cfg)]))
    assert (s.name, s.port, s.verbose) == ("m", 9100, True)  # the file over env; env where neither speaks
    assert config_from_args(cls, parser.parse_args(["m", "--config", str(cfg), "--port", "7"])).port == 7


def test_settings_errors_name_the_key_and_its_environment_variable():
    cls = _settings_class()
    with pytest.raises(ConfigError, match=r"port \(env DEMO_PORT\): Input should be less than or equal to 65535"):
        build_config(cls, {"name": "m", "port": 70000})
    with pytest.raises(ConfigError, match="unknown config key 'prot'.*Did you mean: port"):
        build_config(cls, {"name": "m", "prot": 1})


def test_a_field_can_take_another_flag_name():
    @dataclass(frozen=True)
    class Timed:
        duration_s: float = field(default=20.0, metadata=field_help("seconds per level", flag="--duration"))

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Timed)
    assert config_from_args(Timed, parser.parse_args(["--duration", "3"])).duration_s == 3.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--duration-s", "3"])
