from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.config import ConfigError, config_hash, load_config


@dataclass
class Inner:
    ratio: float = 0.5
    names: list[str] = field(default_factory=lambda: ["a"])


@dataclass
class Outer:
    seed: int = 0
    mode: str = "paper"
    inner: Inner = field(default_factory=Inner)
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self):
        if self.mode not in ("paper", "code"):
            raise ConfigError(f"mode {self.mode!r}")


def test_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("seed: 3\ninner:\n  ratio: 0.25\n")
    cfg = load_config(Outer, f, ["inner.names=[x, y]", "mode=code", "inner.ratio=1"])
    assert cfg == Outer(seed=3, mode="code", inner=Inner(ratio=1.0, names=["x", "y"]))
    assert isinstance(cfg.inner.ratio, float)


def test_exponent_floats_without_a_dot_are_floats(tmp_path):
    # PyYAML reads `1e-3` as a string (YAML 1.1 wants `1.0e-3`); users write it both ways
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  ratio: 1e-3\n")
    assert load_config(Outer, f).inner.ratio == 0.001
    assert load_config(Outer, None, ["inner.ratio=-2E+2"]).inner.ratio == -200.0
    assert load_config(Outer, None, ["mode=code", "path=1e-3"]).path == "1e-3"  # a str field keeps the text
    with pytest.raises(ConfigError, match="expected float"):
        load_config(Outer, None, ["inner.ratio=1e-3x"])
    # untyped values (engine kwargs and the like) get YAML 1.2's reading too, nested ones included
    f.write_text("extra:\n  lr: 1e-3\n  nested: {betas: [9e-1, 2]}\n  name: run-1e3\n")
    assert load_config(Outer, f).extra == {"lr": 0.001, "nested": {"betas": [0.9, 2]}, "name": "run-1e3"}


def test_unknown_keys_and_bad_types_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(Outer, None, ["inner.ratoi=0.1"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config(Outer, None, ["seed=abc"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config(Outer, None, ["seed=true"])
    with pytest.raises(ConfigError, match="mode"):
        load_config(Outer, None, ["mode=other"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Outer, None, ["seed"])


def test_hash_is_content_based(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("seed: 1\ninner: {ratio: 0.5}\n")
    b.write_text("inner:\n  ratio: 0.5\nseed: 1  # same content, other layout\n")
    assert config_hash(load_config(Outer, a)) == config_hash(load_config(Outer, b))
    assert config_hash(load_config(Outer, a)) != config_hash(load_config(Outer, a, ["seed=2"]))


@dataclass
class WithOptionals:
    columns: list[str] | None = None
    inner: Inner | None = None
    limit: int | float = 0


def test_an_optional_fields_error_names_the_bad_item():
    # the error from inside the one non-null type is what the user needs, not "matches none of"
    with pytest.raises(ConfigError, match=r"columns\[1\]: expected str, got 3"):
        load_config(WithOptionals, None, ["columns=[a, 3]"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['ratoi'\]"):
        load_config(WithOptionals, None, ["inner.ratoi=0.1"])
    # several non-null types: each one's reason is listed
    with pytest.raises(ConfigError, match=r"limit: 'x' matches none of .*expected int.*expected float"):
        load_config(WithOptionals, None, ["limit=x"])
    assert load_config(WithOptionals, None, ["columns=[a, b]", "inner.ratio=1", "limit=2.5"]) == \
        WithOptionals(["a", "b"], Inner(ratio=1.0), 2.5)
    assert load_config(WithOptionals, None, ["columns=null"]).columns is None
