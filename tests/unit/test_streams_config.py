"""Camera config files (YAML/JSON) and the config-topic fold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from streams.config import ConfigError, ConfigTopicFollower, expand_env, load_configs, parse_configs, select


def test_example_config_parses() -> None:
    configs = load_configs(PROJECT_ROOT / "streams" / "examples" / "cameras.yaml")
    ids = [c.camera_id for c in configs]
    assert ids == ["demo-crosswalk", "lobby-entrance"]
    rtsp = configs[1].stream
    assert rtsp is not None and rtsp.credentials_ref == "LOBBY_CAM_PASSWORD" and "@" not in rtsp.url
    assert Path(configs[0].stream.url).is_absolute()
    assert list(select(configs)) == ["demo-crosswalk"]  # the RTSP example is disabled


def test_yaml_and_json_with_env_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIP_NAME", "clip.mp4")
    cams = [
        {"camera_id": "a", "stream": {"protocol": "file", "url": "videos/${CLIP_NAME}"}},
        {"camera_id": "b", "stream": {"protocol": "rtsp", "url": "rtsp://${CAM_HOST:-10.0.0.9}/s"}},
    ]
    (tmp_path / "c.json").write_text(json.dumps({"cameras": cams}))
    (tmp_path / "c.yaml").write_text("- camera_id: a\n  stream: {protocol: file, url: 'videos/${CLIP_NAME}'}\n")
    a, b = load_configs(tmp_path / "c.json")
    assert a.stream.url == str(tmp_path / "videos" / "clip.mp4")
    assert b.stream.url == "rtsp://10.0.0.9/s"
    (y,) = load_configs(tmp_path / "c.yaml")
    assert y.stream.url == a.stream.url


def test_errors_name_the_camera_and_field() -> None:
    with pytest.raises(ConfigError, match=r"cameras\[0\] \(x\).*stream.url.*password"):
        parse_configs([{"camera_id": "x", "stream": {"url": "rtsp://u:pw@h/s"}}])
    with pytest.raises(ConfigError, match="duplicate camera_id 'x'"):
        parse_configs([{"camera_id": "x"}, {"camera_id": "x"}])
    with pytest.raises(ConfigError, match="NOPE_VAR"):
        expand_env("${NOPE_VAR}", env={})
    with pytest.raises(ConfigError, match="list of cameras"):
        parse_configs({"cams": []})


def test_unreadable_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_configs(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("cameras: [\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_configs(tmp_path / "bad.yaml")


def test_select_filters_ids_disabled_and_streamless() -> None:
    configs = parse_configs(
        [
            {"camera_id": "a", "stream": {"url": "rtsp://h/a"}},
            {"camera_id": "b", "stream": {"url": "rtsp://h/b"}, "enabled": False},
            {"camera_id": "c"},
            {"camera_id": "d", "stream": {"url": "rtsp://h/d"}},
        ]
    )
    assert list(select(configs)) == ["a", "d"]
    assert list(select(configs, ["d", "b"])) == ["d"]


def test_topic_fold_applies_updates_and_tombstones() -> None:
    f = ConfigTopicFollower("unused:9092", "t")
    f.apply(b"a", json.dumps({"camera_id": "a", "stream": {"url": "rtsp://h/a"}}).encode())
    f.apply(b"b", b'{"camera_id": "b", "stream": {"url": "rtsp://u:pw@h/b"}}')  # malformed: skipped
    configs, changed = f.snapshot()
    assert changed and [c.camera_id for c in configs] == ["a"]
    assert f.snapshot()[1] is False
    f.apply(b"a", json.dumps({"camera_id": "a", "stream": {"url": "rtsp://h/a"}}).encode())
    assert f.snapshot()[1] is False  # same config again: no change
    f.apply(b"a", None)
    configs, changed = f.snapshot()
    assert changed and configs == []
